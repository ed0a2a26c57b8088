"""The engine wired for one connection: a Mews client on the token's shared Postgres budget."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from pydantic import SecretStr

from shared.db.store import Store
from shared.mews.client import MewsClient, RetryPolicy
from shared.mews.ratelimit import PostgresRateLimiter
from shared.settings import Settings
from shared.sync.engine import SyncEngine


def shared_limiter(
    settings: Settings, store: Store, access_token: SecretStr | None = None
) -> PostgresRateLimiter:
    """The token's request budget in Postgres, shared by every process using the token
    (default: the environment's MEWS_ACCESS_TOKEN)."""
    token = access_token or settings.mews_access_token
    return PostgresRateLimiter(
        store,
        token.get_secret_value(),
        limit=settings.mews_rate_limit,
        window_seconds=settings.mews_rate_window_seconds,
        safety_margin=settings.mews_rate_safety_margin,
    )


# A person at a terminal wants a clear failure within seconds, not the patience a scheduled
# function has: fewer attempts and a short connect timeout (a 429's Retry-After is still honoured).
INTERACTIVE_RETRY = RetryPolicy(max_attempts=4)
INTERACTIVE_CONNECT_SECONDS = 5.0


@asynccontextmanager
async def connected_client(
    settings: Settings,
    store: Store,
    *,
    access_token: SecretStr | None = None,
    retry: RetryPolicy | None = None,
    connect_timeout: float | None = None,
) -> AsyncIterator[MewsClient]:
    """A Mews client for ``access_token`` (a connection's; default: the environment's
    MEWS_ACCESS_TOKEN) on the token's shared budget."""
    timeout = httpx.Timeout(settings.mews_timeout_seconds, connect=connect_timeout)
    async with httpx.AsyncClient(timeout=timeout) as http:
        yield MewsClient.from_settings(
            settings,
            http,
            shared_limiter(settings, store, access_token),
            **({"retry": retry} if retry else {}),
            **({"access_token": access_token} if access_token else {}),
        )


@asynccontextmanager
async def connected_engine(
    settings: Settings,
    store: Store,
    *,
    access_token: SecretStr | None = None,
    enterprise_id: str | None = None,
    retry: RetryPolicy | None = None,
    connect_timeout: float | None = None,
    **engine_options: Any,
) -> AsyncIterator[SyncEngine]:
    """An engine for ``access_token`` (default: the environment's) serving ``enterprise_id`` (default: the token's
    own enterprise; a portfolio token needs one named)."""
    async with connected_client(
        settings, store, access_token=access_token, retry=retry, connect_timeout=connect_timeout
    ) as client:
        yield SyncEngine(store, client, enterprise_id=enterprise_id, **engine_options)
