"""First load, polling, refresh by id and reconcile against the simulator and a real database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import pytest

from shared.mews.windows import format_utc, plan_windows
from shared.simulator.data import parse
from shared.simulator.running import Simulator
from shared.sync.engine import ENTITIES, SyncEngine
from shared.sync.runs import recorded_run

pytestmark = pytest.mark.anyio


async def until(
    condition: Callable[[], Awaitable[bool]], *, what: str, within: float = 30.0
) -> None:
    """Wait for ``condition`` to hold, checking every 0.2 s; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {within} s for {what}")
        await asyncio.sleep(0.2)


async def mews_clock_passes(engine: SyncEngine, stamp: str) -> None:
    """Wait until Mews' clock (``configuration/get`` ``NowUtc``) is past ``stamp``, so that a
    poll window (half-open, ending at Mews' now) holds what was written at that second. The
    engine keeps the scope (and the now) of the last check."""
    moment = parse(stamp)

    async def passed() -> bool:
        engine.forget_scope()
        return (await engine.scope()).now_utc > moment

    await until(passed, what=f"Mews' clock to pass {stamp}")


def table_ids(database_url: str, table: str) -> set[str]:
    with psycopg.connect(database_url) as conn:
        return {str(r[0]) for r in conn.execute(f"select mews_id from public.{table}")}


def mirror(database_url: str, table: str) -> dict[str, Any]:
    with psycopg.connect(database_url) as conn:
        return {str(r[0]): r[1] for r in conn.execute(f"select mews_id, raw from public.{table}")}


async def test_first_load_mirrors_every_entity_exactly(
    engine: SyncEngine, simulator: Simulator, database_url: str
) -> None:
    for entity in ENTITIES:
        await engine.backfill(entity)
    data = simulator.data
    assert table_ids(database_url, "guests") == set(data.customers)
    assert mirror(database_url, "guests") == data.customers
    assert table_ids(database_url, "vendors") == set(data.companies)
    assert table_ids(database_url, "reservations") == set(data.reservations)
    assert table_ids(database_url, "resources") == set(data.resources)
    assert table_ids(database_url, "guest_addresses") == set(data.addresses)
    # every mirrored guest's documents, deleted and merged-away guests' included
    assert table_ids(database_url, "guest_identity_documents") == {
        d["Id"] for d in data.documents.values() if d["CustomerId"] in data.customers
    }


async def test_a_second_backfill_does_nothing_and_a_poll_finds_only_changes(
    engine: SyncEngine, simulator: Simulator, database_url: str
) -> None:
    await engine.backfill("customers")
    assert (await engine.backfill("customers")).fetched == 0
    changed = await asyncio.to_thread(simulator.mutate, customers_added=3, customers_updated=4)
    written = changed["customers_added"] + changed["customers_updated"]
    # a new invocation, once Mews' now has moved past the changes
    await mews_clock_passes(engine, max(simulator.data.customers[i]["UpdatedUtc"] for i in written))
    counts = await engine.poll("customers")
    assert counts.inserted == 3
    assert counts.updated == 4
    assert mirror(database_url, "guests") == simulator.data.customers
    assert set(changed["customers_added"]) <= table_ids(database_url, "guests")


async def test_a_crash_mid_backfill_resumes_without_loss_or_duplicates(
    engine: SyncEngine, simulator: Simulator, store: Any, database_url: str
) -> None:
    calls = 0
    original = engine._window

    async def crash_after_three(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 4:
            raise RuntimeError("killed")
        return await original(*args, **kwargs)

    engine._window = crash_after_three  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="killed"):
        await engine.backfill("customers")
    engine._window = original  # type: ignore[method-assign]
    before = await asyncio.to_thread(simulator.stats)
    await engine.backfill("customers")
    after = await asyncio.to_thread(simulator.stats)
    assert mirror(database_url, "guests") == simulator.data.customers
    # the resumed run did not re-read the windows that had committed
    resumed_calls = (
        after["operations"]["customers/getAll"] - before["operations"]["customers/getAll"]
    )
    assert resumed_calls < before["operations"]["customers/getAll"]


async def test_refresh_by_id_fetches_once_per_batch(
    engine: SyncEngine, simulator: Simulator, database_url: str
) -> None:
    ids = list(simulator.data.customers)[:5]
    await asyncio.to_thread(simulator.reset_stats)
    await engine.refresh("customers", ids + ids)
    stats = await asyncio.to_thread(simulator.stats)
    assert table_ids(database_url, "guests") == set(ids)
    assert stats["operations"]["customers/getAll"] == 1
    assert stats["operations"]["identityDocuments/getAll"] == 1


async def test_408_and_5xx_bursts_lose_nothing(
    engine: SyncEngine, simulator: Simulator, database_url: str
) -> None:
    await engine.scope()
    # eight 408s exhaust the retries of one window's first page: the window is split
    await asyncio.to_thread(
        simulator.set_faults, statuses=[408, 408, 408, 408, 408, 408, 408, 408, 500, 502, 503]
    )
    await engine.backfill("customers")
    assert mirror(database_url, "guests") == simulator.data.customers


async def test_a_429_storm_is_waited_out_and_recorded(
    engine: SyncEngine, simulator: Simulator, store: Any, database_url: str
) -> None:
    await asyncio.to_thread(simulator.set_faults, storm=3, storm_retry_after=1)
    async with recorded_run(store, "poll_changes") as run:
        await engine.backfill("reservations", run)
    assert table_ids(database_url, "reservations") == set(simulator.data.reservations)
    assert engine.client.stats.rate_limited == 3


async def test_a_malformed_record_is_quarantined_and_the_rest_lands(
    engine: SyncEngine, simulator: Simulator, store: Any, database_url: str
) -> None:
    broken_id = next(iter(simulator.data.customers))
    simulator.data.customers[broken_id]["LastName"] = None
    simulator.data.customers[broken_id]["UpdatedUtc"] = "yesterday"
    async with recorded_run(store, "poll_changes") as run:
        await engine.backfill("customers", run)
    assert (run.status, run.counts["customers_quarantined"]) == ("succeeded", 1)
    assert table_ids(database_url, "guests") == set(simulator.data.customers) - {broken_id}
    with psycopg.connect(database_url) as conn:
        row = conn.execute("select mews_id, reason, raw->>'Id' from public.quarantine").fetchone()
    assert row is not None
    assert row[0] == broken_id
    assert "LastName" in row[1]


async def test_an_interrupted_restart_resumes_where_it_stopped(
    engine: SyncEngine, simulator: Simulator, store: Any, database_url: str
) -> None:
    await engine.backfill("customers")
    calls = 0
    original = engine._window

    async def crash_after_three(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 4:
            raise RuntimeError("killed")
        return await original(*args, **kwargs)

    engine._window = crash_after_three  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="killed"):
        await engine.backfill("customers", restart=True)
    engine._window = original  # type: ignore[method-assign]
    await asyncio.to_thread(simulator.reset_stats)
    resumed = await engine.backfill("customers")
    stats = await asyncio.to_thread(simulator.stats)
    scope = await engine.scope()
    planned = len(plan_windows(scope.oldest_utc, scope.now_utc))
    assert resumed.fetched > 0  # not "finished earlier"
    # the windows the restart committed before it was killed are not read again
    assert 0 < stats["operations"]["customers/getAll"] < planned
    assert mirror(database_url, "guests") == simulator.data.customers


async def test_two_loads_at_once_record_each_window_done_once(
    engine: SyncEngine, store: Any, database_url: str
) -> None:
    await asyncio.gather(engine.backfill("customers"), engine.backfill("customers"))
    scope = await engine.scope()
    [(done,)] = conn_rows(
        database_url,
        "select state->'done' from public.sync_checkpoints where entity = 'customers'"
        " and phase = 'backfill'",
    )
    planned = {format_utc(w.start) for w in plan_windows(scope.oldest_utc, scope.now_utc)}
    assert sorted(done) == sorted(planned)


async def test_a_window_reported_done_twice_is_recorded_once(store: Any) -> None:
    where = {
        "p_scope_id": "00000000-0000-4000-8000-000000000001",
        "p_entity": "customers",
        "p_phase": "backfill",
    }
    first = await store.call(
        "checkpoint_window_done", **where, p_window_start="2026-01-01T00:00:00Z"
    )
    again = await store.call(
        "checkpoint_window_done", **where, p_window_start="2026-01-01T00:00:00Z"
    )
    other = await store.call(
        "checkpoint_window_done", **where, p_window_start="2026-02-01T00:00:00Z"
    )
    assert (first, again, other) == ({"done": 1}, {"done": 1}, {"done": 2})


def conn_rows(database_url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(query).fetchall()
