"""The shared rate limit on a real Postgres: separate connections share one budget."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from shared.db.store import PsycopgTransport, Store
from shared.mews.ratelimit import PostgresRateLimiter, budget, token_key

pytestmark = pytest.mark.anyio
TOKEN = "C66EF7B239D24632943D115EDE9CB810-EA00F8FD8294692C940F6B5A8F9453D"


class RefusedError(Exception):
    def __init__(self, wait: float) -> None:
        self.wait = wait


async def refuse(seconds: float) -> None:
    raise RefusedError(seconds)


@pytest.fixture
async def stores(database_url: str) -> AsyncIterator[list[Store]]:
    """Three stores with their own pools: three 'processes'."""
    opened = [Store(await PsycopgTransport.connect(database_url, max_size=4)) for _ in range(3)]
    yield opened
    for store in opened:
        await store.aclose()


def test_budget_keeps_the_safety_margin() -> None:
    assert budget(200, 0.05) == 190
    assert budget(200, 0.0) == 200
    assert budget(1, 0.5) == 1


def test_the_key_is_a_hash_not_the_token() -> None:
    key = token_key(TOKEN)
    assert TOKEN not in key
    assert key == token_key(TOKEN)
    assert key != token_key(TOKEN[:-1] + "0")


async def test_concurrent_callers_on_many_connections_get_exactly_the_budget(
    stores: list[Store],
) -> None:
    limiters = [
        PostgresRateLimiter(
            s, TOKEN, limit=10, window_seconds=60, safety_margin=0, guard_seconds=0, sleep=refuse
        )
        for s in stores
    ]
    results = await asyncio.gather(
        *(limiters[i % 3].acquire() for i in range(25)), return_exceptions=True
    )
    granted = [r for r in results if r is None]
    refused = [r for r in results if isinstance(r, RefusedError)]
    assert len(granted) == 10
    assert len(refused) == 15
    assert all(55 < r.wait <= 60 for r in refused)


async def test_the_window_slides_and_no_window_holds_more_than_the_budget(
    stores: list[Store],
) -> None:
    limiters = [
        PostgresRateLimiter(s, TOKEN, limit=5, window_seconds=1, safety_margin=0, guard_seconds=0)
        for s in stores
    ]
    times: list[float] = []

    async def take(limiter: PostgresRateLimiter) -> None:
        await limiter.acquire()
        times.append(time.monotonic())

    await asyncio.gather(*(take(limiters[i % 3]) for i in range(15)))
    times.sort()
    assert len(times) == 15
    # three windows' worth took at least two full windows
    assert times[-1] - times[0] >= 1.9
    for i, start in enumerate(times):
        inside = [t for t in times[i:] if t < start + 0.95]
        assert len(inside) <= 5


async def test_a_pause_stops_every_process_on_the_token(stores: list[Store]) -> None:
    first = PostgresRateLimiter(stores[0], TOKEN, limit=100, window_seconds=30)
    other = PostgresRateLimiter(stores[1], TOKEN, limit=100, window_seconds=30, sleep=refuse)
    unrelated = PostgresRateLimiter(stores[2], "another-token", limit=100, window_seconds=30)
    await first.pause(20)
    with pytest.raises(RefusedError) as caught:
        await other.acquire()
    assert 19 < caught.value.wait <= 20
    await unrelated.acquire()  # other tokens are not paused


async def test_a_shorter_pause_never_shortens_a_longer_one(stores: list[Store]) -> None:
    limiter = PostgresRateLimiter(stores[0], TOKEN, sleep=refuse)
    await limiter.pause(30)
    await limiter.pause(1)
    with pytest.raises(RefusedError) as caught:
        await limiter.acquire()
    assert caught.value.wait > 25
