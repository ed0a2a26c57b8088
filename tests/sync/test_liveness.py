"""Runs are alive or over; one worker holds each unit of work."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from pathlib import Path
from typing import Any

import psycopg
import pytest

from shared.db.store import PsycopgTransport, Store
from shared.sync.liveness import Held, Liveness, live_run, unit
from shared.sync.runs import recorded_run

pytestmark = pytest.mark.anyio


def rows(url: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


async def wait_for(predicate: Any, limit: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not await asyncio.to_thread(predicate):
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.1)


WORKER = textwrap.dedent(
    """
    import asyncio, sys
    from shared.db.store import PsycopgTransport, Store
    from shared.sync.liveness import Liveness, live_run, unit

    async def main() -> None:
        store = Store(await PsycopgTransport.connect(sys.argv[1], max_size=2))
        async with live_run(store, "poll_changes", liveness=Liveness(heartbeat_seconds=0.2)) as run:
            async with unit(store, run, "poll:scope:customers"):
                print(run.id, flush=True)
                await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


async def killed_worker(database_url: str, script: str = WORKER) -> str:
    """Run ``script`` until it prints its run id, kill -9 it; the dead run's id."""
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        database_url,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path.cwd())},
    )
    assert worker.stdout is not None
    dead_id = (await worker.stdout.readline()).decode().strip()
    worker.send_signal(signal.SIGKILL)
    await worker.wait()
    await worker.stdout.read()
    return dead_id


async def wait_session_gone(database_url: str, run_id: str) -> None:
    """Until PostgreSQL has ended the dead process's session (milliseconds after the kill)."""
    await wait_for(
        lambda: (
            rows(
                database_url,
                "select app.session_alive(session_id) from public.sync_runs where id = %s",
                (run_id,),
            )
            == [(False,)]
        )
    )


async def test_a_killed_run_is_seen_dead_at_once_and_its_unit_taken_over(
    database_url: str, store: Store
) -> None:
    """No waiting for a stale heartbeat or an expired lease: the dead process's session lock
    is free, so the next run takes the unit over and marks the dead run abandoned."""
    dead_id = await killed_worker(database_url)
    [(status, has_session)] = rows(
        database_url, "select status, session_id is not null from public.sync_runs"
    )
    assert (status, has_session) == ("running", True)
    await wait_session_gone(database_url, dead_id)
    # the dead run's heartbeat is fresh and its lease unexpired (the defaults: 90 s, 120 s)
    [(fresh, unexpired)] = rows(
        database_url,
        "select r.heartbeat_at > now() - interval '60 seconds', l.expires_at > now()"
        " from public.sync_runs r, public.sync_leases l where r.id = %s",
        (dead_id,),
    )
    assert (fresh, unexpired) == (True, True)
    async with (
        live_run(store, "poll_changes") as run,
        unit(store, run, "poll:scope:customers") as mine,
    ):
        assert mine
    [(status, finished, by, error)] = rows(
        database_url,
        "select status, finished_at is not null, abandoned_by, error from public.sync_runs where id = %s",
        (dead_id,),
    )
    assert (status, finished, by) == ("abandoned", True, f"poll_changes {run.id}")
    assert "its database session is gone" in error
    assert run.counts["runs_abandoned"] == 1
    assert rows(database_url, "select count(*) from public.sync_runs where status = 'running'") == [
        (0,)
    ]


async def test_a_lease_of_a_dead_holder_is_taken_over_even_before_any_reaping(
    database_url: str, store: Store
) -> None:
    """A claimant that meets the dead holder's lease first (no run reaped it yet) takes it, says
    from whom, and marks the dead run abandoned itself."""
    dead_id = await killed_worker(database_url)
    await wait_session_gone(database_url, dead_id)
    seen: list[Held] = []
    async with (
        recorded_run(store, "poll_changes") as run,
        unit(store, run, "poll:scope:customers", Liveness(on_held=seen.append)) as mine,
    ):
        assert mine
    assert [(h.event, h.holder, h.job) for h in seen] == [("taken_over", dead_id, "poll_changes")]
    assert "its database session is gone" in (seen[0].detail or "")
    assert run.counts["units_taken_over"] == 1
    [(status, by)] = rows(
        database_url, "select status, abandoned_by from public.sync_runs where id = %s", (dead_id,)
    )
    assert (status, by) == ("abandoned", str(run.id))


async def test_a_run_without_a_session_lock_is_known_dead_only_by_its_lease_expiry(
    database_url: str, store: Store
) -> None:
    """Over the Supabase API (no session) a run records no session: its lease is held until it
    expires, and a claimant is told who holds it and since when."""
    rows(database_url, "insert into public.sync_runs (job, owner) values ('backfill', 'far:1')")
    [(holder,)] = rows(database_url, "select id::text from public.sync_runs")
    taken = await store.call("lease_acquire", p_name="u", p_holder=holder, p_seconds=60)
    assert taken["acquired"]
    refused = await store.call("lease_acquire", p_name="u", p_holder="other", p_seconds=60)
    assert (refused["acquired"], refused["holder"], refused["job"], refused["owner"]) == (
        False,
        holder,
        "backfill",
        "far:1",
    )
    assert refused["since"] is not None
    rows(database_url, "update public.sync_leases set expires_at = now() - interval '1 second'")
    later = await store.call("lease_acquire", p_name="u", p_holder="other", p_seconds=60)
    assert (later["acquired"], later["previous"]["expired"]) == (True, True)


async def test_a_second_worker_skips_a_held_unit_and_is_recorded_as_skipped(
    database_url: str, store: Store
) -> None:
    other = Store(await PsycopgTransport.connect(database_url, max_size=2))
    try:
        async with live_run(store, "poll_changes") as first, unit(store, first, "u") as mine:
            assert mine
            async with (
                live_run(other, "poll_changes") as second,
                unit(other, second, "u") as theirs,
            ):
                assert not theirs
        assert (first.status, second.status) == ("succeeded", "skipped")
        # released at the end of the block: the next run gets it
        async with live_run(other, "poll_changes") as third, unit(other, third, "u") as again:
            assert again
    finally:
        await other.aclose()
    statuses = rows(database_url, "select status from public.sync_runs order by started_at")
    assert statuses == [("succeeded",), ("skipped",), ("succeeded",)]


async def test_the_heartbeat_keeps_a_long_units_lease(database_url: str, store: Store) -> None:
    async with (
        live_run(store, "reconcile", liveness=Liveness(heartbeat_seconds=0.1)) as run,
        unit(store, run, "long"),
    ):
        rows(database_url, "update public.sync_leases set expires_at = now() + interval '1 second'")
        await wait_for(
            lambda: (
                rows(
                    database_url,
                    "select expires_at > now() + interval '60 seconds' from public.sync_leases",
                )
                == [(True,)]
            )
        )


async def test_a_run_marked_abandoned_while_alive_still_records_its_outcome(
    database_url: str, store: Store
) -> None:
    async with live_run(store, "score_profiles") as run:
        rows(
            database_url,
            "update public.sync_runs set heartbeat_at = now() - interval '1 hour' where id = %s",
            (str(run.id),),
        )
        reaped = await store.call("runs_reap", p_stale_seconds=60, p_by="someone")
        assert reaped["abandoned"] == 1
        run.count(scored=5)
    [(status, error)] = rows(
        database_url, "select status, error from public.sync_runs where id = %s", (str(run.id),)
    )
    assert status == "succeeded"
    assert "marked abandoned" in error


async def test_a_run_that_waits_for_a_held_unit_reports_the_holders_outcome(
    database_url: str, store: Store
) -> None:
    """A command waits for a unit a live run holds; the holder did it, so the waiter does not do
    it again, and is told who held it and what came of it."""
    other = Store(await PsycopgTransport.connect(database_url, max_size=2))
    seen: list[Held] = []
    waiting = Liveness(wait=True, poll_seconds=0.05, on_held=seen.append)
    try:
        async with live_run(store, "backfill") as first:
            async with unit(store, first, "backfill:scope:customers") as mine:
                assert mine
                async with live_run(other, "backfill") as second:
                    task = asyncio.create_task(_enter(other, second, waiting))
                    await wait_for_async(lambda: [h.event for h in seen] == ["waiting"])
            # released with its outcome: the waiter learns it was done
            assert await task is False
        assert [(h.event, h.holder, h.job) for h in seen] == [
            ("waiting", str(first.id), "backfill"),
            ("done", str(first.id), "backfill"),
        ]
        assert seen[0].owner is not None
        assert seen[0].since is not None
        assert second.counts["units_waited"] == 1
        assert "backfill:scope:customers" in second.units_done
    finally:
        await other.aclose()


async def test_a_run_that_waits_for_a_unit_whose_holder_failed_does_it_itself(
    database_url: str, store: Store
) -> None:
    other = Store(await PsycopgTransport.connect(database_url, max_size=2))
    seen: list[Held] = []
    waiting = Liveness(wait=True, poll_seconds=0.05, on_held=seen.append)
    try:
        async with live_run(other, "poll_changes") as second:
            tasks: list[asyncio.Task[bool]] = []

            async def holder_fails() -> None:
                async with live_run(store, "poll_changes") as first, unit(store, first, "u"):
                    tasks.append(asyncio.create_task(_enter(other, second, waiting)))
                    await wait_for_async(lambda: [h.event for h in seen] == ["waiting"])
                    raise RuntimeError("the holder's work failed")

            with pytest.raises(RuntimeError):
                await holder_fails()
            assert await tasks[0] is True
        assert [(h.event, h.detail) for h in seen] == [
            ("waiting", None),
            ("taken_over", "it failed"),
        ]
    finally:
        await other.aclose()


async def _enter(store: Store, run: Any, liveness: Liveness) -> bool:
    async with unit(
        store, run, "backfill:scope:customers" if run.job == "backfill" else "u", liveness
    ) as mine:
        return mine


async def wait_for_async(predicate: Any, limit: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_released_unit_stays_free_while_its_run_heartbeats(
    database_url: str, store: Store
) -> None:
    """The heartbeat extends the leases a run holds, never one it released."""
    async with live_run(store, "poll_changes", liveness=Liveness(heartbeat_seconds=0.05)) as run:
        async with unit(store, run, "u") as mine:
            assert mine
        beats = await store.call("run_heartbeat", p_id=str(run.id), p_lease_seconds=600)
        assert beats["leases"] == 0
        assert rows(
            database_url, "select outcome, expires_at <= now() from public.sync_leases"
        ) == [("done", True)]
