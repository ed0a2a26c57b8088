"""What the scheduled functions share: a Mews client on the shared budget, and the engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from shared.db.store import Store
from shared.mews.client import MewsClient
from shared.mews.ratelimit import PostgresRateLimiter
from shared.settings import Settings
from shared.sync.engine import SyncEngine


@asynccontextmanager
async def connected_engine(settings: Settings, store: Store) -> AsyncIterator[SyncEngine]:
    limiter = PostgresRateLimiter(
        store,
        settings.mews_access_token.get_secret_value(),
        limit=settings.mews_rate_limit,
        window_seconds=settings.mews_rate_window_seconds,
        safety_margin=settings.mews_rate_safety_margin,
    )
    async with httpx.AsyncClient(timeout=settings.mews_timeout_seconds) as http:
        client = MewsClient.from_settings(settings, http, limiter)
        yield SyncEngine(store, client)
