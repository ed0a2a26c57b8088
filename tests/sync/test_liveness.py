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
from shared.sync.liveness import live_run, unit

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
    from shared.sync.liveness import live_run, unit

    async def main() -> None:
        store = Store(await PsycopgTransport.connect(sys.argv[1], max_size=2))
        async with live_run(store, "poll_changes", heartbeat_seconds=0.2) as run:
            async with unit(store, run, "poll:scope:customers"):
                print(run.id, flush=True)
                await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


async def test_a_killed_run_is_marked_abandoned_by_the_next_and_its_unit_taken_over(
    database_url: str, store: Store
) -> None:
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WORKER,
        database_url,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path.cwd())},
    )
    assert worker.stdout is not None
    dead_id = (await worker.stdout.readline()).decode().strip()
    worker.send_signal(signal.SIGKILL)
    await worker.wait()
    await worker.stdout.read()
    assert rows(database_url, "select status from public.sync_runs") == [("running",)]

    # the dead run's heartbeat is now older than the staleness the next job allows
    await wait_for(
        lambda: (
            rows(
                database_url,
                "select heartbeat_at < now() - interval '1 second' from public.sync_runs where id = %s",
                (dead_id,),
            )
            == [(True,)]
        )
    )
    # the dead run's lease has not expired: reaping the run frees it
    async with (
        live_run(store, "poll_changes", stale_seconds=1) as run,
        unit(store, run, "poll:scope:customers") as mine,
    ):
        assert mine
    [(status, finished, by, error)] = rows(
        database_url,
        "select status, finished_at is not null, abandoned_by, error from public.sync_runs where id = %s",
        (dead_id,),
    )
    assert (status, finished, by) == ("abandoned", True, f"poll_changes {run.id}")
    assert "no heartbeat since" in error
    assert run.counts["runs_abandoned"] == 1
    assert rows(database_url, "select count(*) from public.sync_runs where status = 'running'") == [
        (0,)
    ]


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
    async with live_run(store, "reconcile", heartbeat_seconds=0.1) as run, unit(store, run, "long"):
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
