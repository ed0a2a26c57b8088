"""A run's status says what happened, against the simulator (with faults) and a real database:
quarantined records leave it ``succeeded`` with their count; a window whose Mews calls keep
failing is left for the next run (``partial``, named) while the others complete; a database
connection terminated mid-run is reopened and the run completes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from shared.db.store import Store
from shared.mews.client import MewsClient, RetryPolicy
from shared.mews.ratelimit import PostgresRateLimiter
from shared.mews.windows import Window, format_utc, plan_windows
from shared.settings import load_settings
from shared.simulator.data import parse
from shared.simulator.running import Simulator
from shared.sync.engine import Scope, SyncEngine
from shared.sync.runs import recorded_run
from tests.support.backends import terminated_in

pytestmark = pytest.mark.anyio
ATTEMPTS = 4  # the Mews client's attempts per call in these tests


@pytest.fixture
async def engine(simulator: Simulator, store: Store) -> AsyncIterator[SyncEngine]:
    """The engine with quick retries: a call that fails ``ATTEMPTS`` times fails."""
    settings = load_settings(mews_platform_url=simulator.url)
    limiter = PostgresRateLimiter(store, settings.mews_access_token.get_secret_value())
    retry = RetryPolicy(max_attempts=ATTEMPTS, base_delay=0.01, max_delay=0.05)
    async with httpx.AsyncClient() as http:
        client = MewsClient.from_settings(settings, http, limiter, retry=retry)
        yield SyncEngine(store, client, concurrency=4, lag=timedelta(0))


def one(database_url: str, query: str, *params: Any) -> Any:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def guest_ids(database_url: str) -> set[str]:
    with psycopg.connect(database_url) as conn:
        return {str(r[0]) for r in conn.execute("select mews_id from public.guests")}


def customers_in(simulator: Simulator, window: Window) -> set[str]:
    return {
        i
        for i, c in simulator.data.customers.items()
        if window.start <= parse(c["CreatedUtc"]) < window.end
    }


async def busiest_window(engine: SyncEngine, simulator: Simulator) -> Window:
    """The first-load window holding the most customers (not all of them)."""
    scope = await engine.scope()
    windows = plan_windows(scope.oldest_utc, scope.now_utc - engine.lag)
    window = max(windows, key=lambda w: len(customers_in(simulator, w)))
    assert 0 < len(customers_in(simulator, window)) < len(simulator.data.customers)
    return window


async def mews_clock_after(engine: SyncEngine, moment: datetime) -> Scope:
    """The scope once Mews' clock (``NowUtc``) is past ``moment`` (a poll then has a window)."""
    for _ in range(150):
        engine.forget_scope()
        scope = await engine.scope()
        if scope.now_utc > moment:
            return scope
        await asyncio.sleep(0.2)
    raise AssertionError(f"Mews' clock still not past {moment}")


def fail(simulator: Simulator, operation: str, window: Window, times: int) -> None:
    """Mews answers 500 to the reads of ``window`` (by its start), ``times`` times."""
    start = f'"StartUtc":"{format_utc(window.start)}"'
    target = {"operation": operation, "matching": start, "status": 500, "times": times}
    simulator.set_faults(targeted=[target])


async def test_a_run_that_quarantined_records_succeeded_and_counts_them(
    engine: SyncEngine, simulator: Simulator, store: Store, database_url: str
) -> None:
    broken = list(simulator.data.customers)[:3]
    for mews_id in broken:
        simulator.data.customers[mews_id]["LastName"] = None
        simulator.data.customers[mews_id]["UpdatedUtc"] = "yesterday"
    simulator.data.version += 1
    async with recorded_run(store, "backfill") as run:
        await engine.backfill("customers", run)
    assert (run.status, run.error, run.counts["customers_quarantined"]) == ("succeeded", None, 3)
    assert one(database_url, "select status from public.sync_runs") == "succeeded"
    assert guest_ids(database_url) == set(simulator.data.customers) - set(broken)


async def test_a_first_load_window_that_keeps_failing_is_left_for_the_next_run(
    engine: SyncEngine, simulator: Simulator, store: Store, database_url: str
) -> None:
    window = await busiest_window(engine, simulator)
    await asyncio.to_thread(fail, simulator, "customers/getAll", window, ATTEMPTS)
    async with recorded_run(store, "backfill") as run:
        await engine.backfill("customers", run)
    assert run.status == "partial"
    assert run.counts["units_left"] == 1
    span = f"{format_utc(window.start)}..{format_utc(window.end)}"
    assert run.error is not None
    assert f"customers first-load window {span}: MewsServerError" in run.error
    assert "HTTP 500" in run.error
    assert one(database_url, "select error from public.sync_runs") == run.error
    # the other windows completed; the one left is not marked done, the load not finished
    assert guest_ids(database_url) == set(simulator.data.customers) - customers_in(
        simulator, window
    )
    assert not await engine.loaded("customers")
    async with recorded_run(store, "backfill") as second:
        counts = await engine.backfill("customers", second)
    assert (second.status, counts.fetched) == ("succeeded", len(customers_in(simulator, window)))
    assert guest_ids(database_url) == set(simulator.data.customers)
    assert await engine.loaded("customers")


async def test_a_poll_window_that_keeps_failing_keeps_its_high_water_mark_and_the_others_poll(
    engine: SyncEngine, simulator: Simulator, store: Store, database_url: str
) -> None:
    for entity in ("customers", "companies"):
        await engine.backfill(entity)
    where = {"p_scope_id": simulator.data.chain_id, "p_entity": "customers", "p_phase": "poll"}
    before = (await store.call("checkpoint_get", **where))["high_water_utc"]
    scope = await mews_clock_after(engine, datetime.fromisoformat(before))
    polled = Window(datetime.fromisoformat(before) - engine.overlap, scope.now_utc)
    await asyncio.to_thread(fail, simulator, "customers/getAll", polled, ATTEMPTS)
    async with recorded_run(store, "poll_changes") as run:
        await engine.poll("customers", run)
        await engine.poll("companies", run)
    assert (run.status, run.counts["units_left"]) == ("partial", 1)
    assert run.error is not None
    assert "customers poll window" in run.error
    assert (await store.call("checkpoint_get", **where))["high_water_utc"] == before
    companies = {**where, "p_entity": "companies"}
    assert (await store.call("checkpoint_get", **companies))["high_water_utc"] > before
    async with recorded_run(store, "poll_changes") as second:
        await engine.poll("customers", second)
    assert second.status == "succeeded"
    assert (await store.call("checkpoint_get", **where))["high_water_utc"] > before


async def test_a_connection_terminated_in_the_middle_of_an_upsert_is_reopened_and_the_run_completes(
    engine: SyncEngine, simulator: Simulator, store: Store, database_url: str
) -> None:
    with terminated_in(database_url, "upsert_guests", table="guests") as terminated:
        async with recorded_run(store, "backfill") as run:
            await engine.backfill("customers", run)
    assert terminated  # it did happen, in the middle of upsert_guests
    assert (run.status, run.error) == ("succeeded", None)
    assert guest_ids(database_url) == set(simulator.data.customers)
    assert one(database_url, "select status from public.sync_runs") == "succeeded"
