"""The client against the simulator over real HTTP, with the shared Postgres rate limit."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from shared.db.store import PsycopgTransport, Store
from shared.mews.client import MewsClient, RetryPolicy
from shared.mews.errors import MewsAuthError, MewsServerError
from shared.mews.ratelimit import PostgresRateLimiter, UnlimitedRateLimiter
from shared.settings import load_settings
from shared.simulator.running import Simulator, running_simulator
from shared.simulator.server import SimulatorConfig

pytestmark = pytest.mark.anyio


@pytest.fixture
def limited_simulator() -> Iterator[Simulator]:
    config = SimulatorConfig(customers=400, rate_limit=20, rate_window_seconds=2, latency_ms=5)
    with running_simulator(config) as sim:
        yield sim


async def test_the_client_reads_everything_the_simulator_has(limited_simulator: Simulator) -> None:
    settings = load_settings(mews_platform_url=limited_simulator.url)
    async with httpx.AsyncClient() as http:
        client = MewsClient.from_settings(settings, http, UnlimitedRateLimiter())
        config = await client.configuration()
        ids = [
            c.id
            async for page in client.customers(chain_ids=[config.enterprise.chain_id], count=100)
            for c in page.items
        ]
    assert sorted(ids) == sorted(limited_simulator.data.customers)


async def test_concurrent_clients_on_one_token_never_exceed_the_limit(
    limited_simulator: Simulator, database_url: str
) -> None:
    """Four 'processes' (own connection pool, own HTTP client) share one token's budget."""
    settings = load_settings(mews_platform_url=limited_simulator.url)

    async def worker(requests: int) -> int:
        store = Store(await PsycopgTransport.connect(database_url, max_size=2))
        limiter = PostgresRateLimiter(
            store,
            settings.mews_access_token.get_secret_value(),
            limit=20,
            window_seconds=2,
            safety_margin=0,
        )
        try:
            async with httpx.AsyncClient() as http:
                client = MewsClient.from_settings(settings, http, limiter)
                for _ in range(requests):
                    await client.configuration()
                return client.stats.rate_limited
        finally:
            await store.aclose()

    limited = await asyncio.gather(*(worker(15) for _ in range(4)))
    stats = await asyncio.to_thread(limited_simulator.stats)
    assert sum(limited) == 0
    assert stats["rate_limited"] == 0
    assert stats["requests"] == 60
    assert stats["max_in_window"] <= 20


async def test_a_429_storm_is_waited_out_and_counted(limited_simulator: Simulator) -> None:
    await asyncio.to_thread(limited_simulator.set_faults, storm=3, storm_retry_after=0)
    settings = load_settings(mews_platform_url=limited_simulator.url)
    async with httpx.AsyncClient() as http:
        client = MewsClient.from_settings(settings, http, UnlimitedRateLimiter())
        await client.configuration()
    assert client.stats.rate_limited == 3
    assert client.stats.statuses == {429: 3, 200: 1}


async def test_5xx_bursts_are_retried_until_the_cap(limited_simulator: Simulator) -> None:
    await asyncio.to_thread(limited_simulator.set_faults, statuses=[500, 502, 503, 500])

    async def no_sleep(_: float) -> None:
        return None

    settings = load_settings(mews_platform_url=limited_simulator.url)
    async with httpx.AsyncClient() as http:
        client = MewsClient.from_settings(
            settings,
            http,
            UnlimitedRateLimiter(),
            retry=RetryPolicy(max_attempts=3),
            sleep=no_sleep,
        )
        with pytest.raises(MewsServerError):
            await client.configuration()
        await client.configuration()  # the fourth fault, then success
    assert client.stats.statuses == {500: 2, 502: 1, 503: 1, 200: 1}


async def test_wrong_tokens_are_an_auth_error(limited_simulator: Simulator) -> None:
    settings = load_settings(
        mews_platform_url=limited_simulator.url, mews_access_token="0" * 32 + "-" + "0" * 31
    )
    async with httpx.AsyncClient() as http:
        client = MewsClient.from_settings(settings, http, UnlimitedRateLimiter())
        with pytest.raises(MewsAuthError):
            await client.configuration()
