"""A server that limits the token below our limit, against clients in two 'processes' (own
connection pool, own HTTP client, own limiter) on the shared Postgres state: no request reaches
the server while one of its 429's Retry-After is running, and the work completes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack

import httpx
import pytest

from shared.db.store import PsycopgTransport, Store
from shared.mews.client import MewsClient
from shared.mews.ratelimit import PostgresRateLimiter
from shared.settings import load_settings
from shared.simulator.running import Simulator, running_simulator
from shared.simulator.server import SimulatorConfig

pytestmark = pytest.mark.anyio
SERVER_LIMIT = 10  # per 2 s; our limit is 100 per 2 s
DEADLINE_SECONDS = 180  # a generous bound for a loaded machine, not a measure


@pytest.fixture
def strict_simulator() -> Iterator[Simulator]:
    config = SimulatorConfig(customers=50, rate_limit=SERVER_LIMIT, rate_window_seconds=2)
    with running_simulator(config) as sim:
        yield sim


@pytest.fixture
async def clients(
    strict_simulator: Simulator, database_url: str
) -> AsyncIterator[list[MewsClient]]:
    """Two clients, each with its own pool, HTTP client and limiter, on one token."""
    settings = load_settings(mews_platform_url=strict_simulator.url)
    async with AsyncExitStack() as stack:
        made = []
        for _ in range(2):
            store = Store(await PsycopgTransport.connect(database_url, max_size=4))
            stack.push_async_callback(store.aclose)
            http = await stack.enter_async_context(httpx.AsyncClient())
            limiter = PostgresRateLimiter(
                store,
                settings.mews_access_token.get_secret_value(),
                limit=100,
                window_seconds=2,
                safety_margin=0,
                guard_seconds=0.3,
            )
            made.append(MewsClient.from_settings(settings, http, limiter))
        yield made


async def test_no_request_reaches_mews_while_a_retry_after_runs(
    strict_simulator: Simulator, clients: list[MewsClient]
) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    # the token meets its limit with one caller: requests already on the wire when a token
    # meets its very first 429 cannot be called back, so none is
    while clients[0].stats.rate_limited == 0:
        await clients[0].configuration()
        assert time.monotonic() < deadline
    learned = strict_simulator.stats()["rate_limited"]

    # then six callers in two processes keep working until the limit, probed again as it
    # recovers, has answered 429s during their work, and each has done ten calls more
    done = [0] * 6

    async def caller(index: int) -> None:
        client = clients[index % 2]
        while done[index] < 10 or strict_simulator.stats()["rate_limited"] <= learned:
            await client.configuration()
            done[index] += 1
            assert time.monotonic() < deadline

    await asyncio.gather(*(caller(i) for i in range(6)))

    stats = strict_simulator.stats()
    assert stats["rate_limited"] > learned  # 429s met by concurrent callers
    assert stats["during_retry_after"] == 0
    assert stats["max_in_window"] <= SERVER_LIMIT
    answered = sum(c.stats.statuses.get(200, 0) for c in clients)
    assert answered == stats["requests"] >= 60 + 1
