"""A first load of several entities runs them side by side (bound by Mews, not by waiting for
one another), except that an entity swept by its owners' ids starts when their first load has
ended: swept before, it would miss the owners loaded after it and still be marked done."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import httpx
import psycopg
import pytest

from shared.db.store import Store
from shared.mews.client import MewsClient, RetryPolicy
from shared.mews.ratelimit import PostgresRateLimiter
from shared.settings import load_settings
from shared.simulator.running import Simulator, running_simulator
from shared.simulator.server import SimulatorConfig
from shared.sync.engine import SyncEngine
from shared.sync.entities import SPECS
from shared.sync.liveness import engine_units, live_run
from shared.sync.runs import recorded_run

pytestmark = pytest.mark.anyio
ALL = tuple(SPECS.values())


class Timeline:
    """When each request of each operation started and ended (monotonic seconds)."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, float, float]] = []
        self._started: dict[int, float] = {}

    async def request(self, request: httpx.Request) -> None:
        self._started[id(request)] = time.monotonic()

    async def response(self, response: httpx.Response) -> None:
        request = response.request
        operation = request.url.path.removeprefix("/api/connector/v1/")
        self.spans.append((operation, self._started.pop(id(request)), time.monotonic()))

    def of(self, operation: str) -> list[tuple[float, float]]:
        return [(start, end) for op, start, end in self.spans if op.startswith(operation)]

    def operations_at_once(self) -> int:
        """The most distinct operations that had a request under way at one moment."""
        most = 0
        for _, moment, _ in self.spans:
            under_way = {op for op, start, end in self.spans if start <= moment < end}
            most = max(most, len(under_way))
        return most


@pytest.fixture
def slow_simulator() -> Iterator[Simulator]:
    """Every response takes a while, so that what runs side by side overlaps in time."""
    config = SimulatorConfig(customers=400, latency_ms=150, rate_limit=200)
    with running_simulator(config) as sim:
        yield sim


@pytest.fixture
async def timed_engine(
    slow_simulator: Simulator, store: Store
) -> AsyncIterator[tuple[SyncEngine, Timeline]]:
    settings = load_settings(mews_platform_url=slow_simulator.url)
    limiter = PostgresRateLimiter(store, settings.mews_access_token.get_secret_value())
    timeline = Timeline()
    hooks = {"request": [timeline.request], "response": [timeline.response]}
    async with httpx.AsyncClient(event_hooks=hooks, timeout=30) as http:
        client = MewsClient.from_settings(
            settings, http, limiter, retry=RetryPolicy(base_delay=0.05, max_delay=2)
        )
        yield SyncEngine(store, client, concurrency=4, lag=timedelta(0)), timeline


async def test_every_entity_is_loaded_side_by_side_and_documents_after_customers(
    timed_engine: tuple[SyncEngine, Timeline], slow_simulator: Simulator, database_url: str
) -> None:
    engine, timeline = timed_engine
    await engine.scope()
    async with live_run(engine.store, "backfill") as run:
        await engine_units(engine, run, "backfill", ALL, engine.backfill, side_by_side=True)
    assert [s.name for s in ALL if not await engine.loaded(s)] == []
    customers, documents = timeline.of("customers/getAll"), timeline.of("identityDocuments")
    assert customers
    assert documents
    assert min(start for start, _ in documents) >= max(end for _, end in customers)
    assert timeline.operations_at_once() >= 3  # customers, companies, reservations, ... at once
    guests = set(slow_simulator.data.customers)
    with psycopg.connect(database_url) as conn:
        stored = {
            str(i) for (i,) in conn.execute("select mews_id from public.guest_identity_documents")
        }
    assert stored == {
        d["Id"] for d in slow_simulator.data.documents.values() if d["CustomerId"] in guests
    }


async def test_one_after_another_no_two_entities_overlap(
    timed_engine: tuple[SyncEngine, Timeline],
) -> None:
    """The same units without ``side_by_side``: the comparison that shows the option matters."""
    engine, timeline = timed_engine
    await engine.scope()
    async with live_run(engine.store, "backfill") as run:
        await engine_units(engine, run, "backfill", ALL, engine.backfill)
    assert [s.name for s in ALL if not await engine.loaded(s)] == []
    assert timeline.operations_at_once() == 1


async def test_documents_wait_for_the_first_load_of_their_guests(
    timed_engine: tuple[SyncEngine, Timeline], slow_simulator: Simulator
) -> None:
    engine, timeline = timed_engine
    async with recorded_run(engine.store, "backfill") as run:
        counts = await engine.backfill(SPECS["identity_documents"], run)
    assert counts.fetched == 0
    assert run.counts["identity_documents_waiting_for_customers"] == 1
    assert not await engine.loaded(
        SPECS["identity_documents"]
    )  # not marked done: the next pass sweeps
    assert timeline.of("identityDocuments") == []
    await engine.backfill(SPECS["customers"])
    swept = await engine.backfill(SPECS["identity_documents"])
    assert await engine.loaded(SPECS["identity_documents"])
    assert swept.fetched == sum(
        1
        for d in slow_simulator.data.documents.values()
        if d["CustomerId"] in slow_simulator.data.customers
    )
