"""The engine wired for one connection: a Mews client on the token's shared Postgres budget."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from shared.db.store import Store
from shared.mews.client import MewsClient
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


@asynccontextmanager
async def connected_engine(
    settings: Settings, store: Store, **engine_options: Any
) -> AsyncIterator[SyncEngine]:
    async with httpx.AsyncClient(timeout=settings.mews_timeout_seconds) as http:
        client = MewsClient.from_settings(settings, http, shared_limiter(settings, store))
        yield SyncEngine(store, client, **engine_options)
