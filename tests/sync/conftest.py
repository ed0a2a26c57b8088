"""A simulator, a real database, and the engine between them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import httpx
import pytest

from shared.db.store import Store
from shared.mews.client import MewsClient, RetryPolicy
from shared.mews.ratelimit import PostgresRateLimiter
from shared.settings import load_settings
from shared.simulator.running import Simulator, running_simulator
from shared.simulator.server import SimulatorConfig
from shared.sync.engine import SyncEngine
from tests.support.respx_mews import mocked_client


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    with running_simulator(SimulatorConfig(customers=600, enterprises=1, rate_limit=200)) as sim:
        yield sim


@pytest.fixture
async def engine(simulator: Simulator, store: Store) -> AsyncIterator[SyncEngine]:
    settings = load_settings(mews_platform_url=simulator.url)
    limiter = PostgresRateLimiter(store, settings.mews_access_token.get_secret_value())
    async with httpx.AsyncClient() as http:
        client = MewsClient.from_settings(
            settings, http, limiter, retry=RetryPolicy(base_delay=0.05, max_delay=2)
        )
        # no safety lag: the simulator commits instantly, and tests should not wait a minute
        yield SyncEngine(store, client, concurrency=4, lag=timedelta(0))


@pytest.fixture
async def mews_client() -> AsyncIterator[MewsClient]:
    """A client for respx-mocked Mews (tests.support.respx_mews)."""
    async with httpx.AsyncClient() as http:
        yield mocked_client(http)
