"""The engine wired for one connection: a Mews client on the token's shared Postgres budget."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from shared.db.store import Store
from shared.mews.client import MewsClient, RetryPolicy
from shared.mews.ratelimit import PostgresRateLimiter
from shared.settings import Settings
from shared.sync.engine import SyncEngine


def shared_limiter(settings: Settings, store: Store) -> PostgresRateLimiter:
    return PostgresRateLimiter(
        store,
        settings.mews_access_token.get_secret_value(),
        limit=settings.mews_rate_limit,
        window_seconds=settings.mews_rate_window_seconds,
        safety_margin=settings.mews_rate_safety_margin,
    )


# A person at a terminal wants a clear failure within seconds, not the patience a scheduled
# function has: fewer attempts and a short connect timeout (a 429's Retry-After is still honoured).
INTERACTIVE_RETRY = RetryPolicy(max_attempts=4)
INTERACTIVE_CONNECT_SECONDS = 5.0


@asynccontextmanager
async def connected_engine(
    settings: Settings,
    store: Store,
    *,
    retry: RetryPolicy | None = None,
    connect_timeout: float | None = None,
    **engine_options: Any,
) -> AsyncIterator[SyncEngine]:
    timeout = httpx.Timeout(settings.mews_timeout_seconds, connect=connect_timeout)
    async with httpx.AsyncClient(timeout=timeout) as http:
        client = MewsClient.from_settings(
            settings, http, shared_limiter(settings, store), **({"retry": retry} if retry else {})
        )
        yield SyncEngine(store, client, **engine_options)
