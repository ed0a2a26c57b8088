"""Dead holders are seen at once, live ones are waited for: the real CLI in subprocesses
against the simulator and the real database, killed with ``kill -9``.

The leases and the staleness are set to an hour for every process here, so nothing in these
tests can pass by a lease expiring or a heartbeat going stale: a dead holder is known dead only
because its session lock is gone.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest

from shared.simulator.running import Simulator, running_simulator
from shared.simulator.server import SimulatorConfig

CLI = [sys.executable, "-c", "from shared.cli import main; main()"]
AN_HOUR = "3600"
DEADLINE = 240.0  # seconds a condition may take on a loaded machine before the test fails


@pytest.fixture
def sim() -> Iterator[Simulator]:
    # slow enough (per request) that a first load is still running when it is killed
    with running_simulator(SimulatorConfig(customers=3000, latency_ms=150, rate_limit=None)) as s:
        yield s


def env_for(database_url: str, sim: Simulator) -> dict[str, str]:
    strip = ("MEWS_", "SUPABASE_", "DATABASE_", "LEASE_", "RUN_")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(strip)}
    env.update(
        DATABASE_URL=database_url,
        MEWS_PLATFORM_URL=sim.url,
        MEWS_WEBSOCKET_URL=sim.ws_url,
        LEASE_SECONDS=AN_HOUR,
        RUN_STALE_SECONDS=AN_HOUR,
        LEASE_POLL_SECONDS="0.2",
        NO_COLOR="1",
        COLUMNS="200",
        PYTHONUNBUFFERED="1",
    )
    return env


def value(url: str, query: str, params: Any = None) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()
    return None if row is None else row[0]


def wait_until(what: str, predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def start(env: dict[str, str], tmp_path: Path, name: str, *args: str) -> subprocess.Popen[str]:
    with (tmp_path / f"{name}.out").open("w") as out:  # the child keeps its own copy
        return subprocess.Popen(  # noqa: S603 - our own CLI
            [*CLI, *args],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )


def output(tmp_path: Path, name: str) -> str:
    return " ".join((tmp_path / f"{name}.out").read_text().split())  # the console wraps lines


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own CLI
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=DEADLINE, check=False
    )


def kill9(proc: subprocess.Popen[str]) -> None:
    assert proc.poll() is None, "the process ended before its kill point"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def guests(url: str) -> int:
    return int(value(url, "select count(*) from public.guests"))


def test_a_rerun_after_kill_9_of_a_first_load_completes_it_and_status_says_until_then(
    database_url: str, sim: Simulator, tmp_path: Path
) -> None:
    env = env_for(database_url, sim)
    total = len(sim.data.customers)
    first = start(env, tmp_path, "first", "sync", "backfill")
    wait_until("some customers stored", lambda: guests(database_url) >= 1)
    kill9(first)
    assert guests(database_url) < total

    # the data is incomplete: status says so and exits 6
    status = run(env, "status")
    assert status.returncode == 6, status.stdout + status.stderr
    said = " ".join(status.stdout.split())
    assert "first load of customers has not completed" in said

    rerun = run(env, "sync", "backfill")
    text = " ".join((rerun.stdout + rerun.stderr).split())
    assert rerun.returncode == 0, text
    assert guests(database_url) == total
    # its work was free at once because its holder is dead (leases here last an hour)
    assert "backfill run" in text
    assert "its database session is gone" in text
    assert "marked abandoned" in text
    killed = value(
        database_url,
        "select status || ': ' || error from public.sync_runs where job = 'backfill'"
        " order by started_at limit 1",
    )
    assert killed.startswith("abandoned: abandoned: its process")
    assert "its database session is gone" in killed

    after = run(env, "status")
    assert after.returncode == 0, after.stdout + after.stderr


def test_a_backfill_finding_a_live_backfill_waits_for_it_and_reports_its_outcome(
    database_url: str, sim: Simulator, tmp_path: Path
) -> None:
    env = env_for(database_url, sim)
    latency = sim.app.config.latency_ms
    sim.app.config = replace(sim.app.config, latency_ms=3000)  # the first holds on until below
    first = start(env, tmp_path, "first", "sync", "backfill")
    holder = "select holder from public.sync_leases where name like 'backfill:%%:customers'"
    wait_until("the first backfill to hold the customers", lambda: value(database_url, holder))
    first_run = str(value(database_url, holder))
    second = start(env, tmp_path, "second", "sync", "backfill")
    wait_until(
        "the second backfill to wait for the first",
        lambda: "waiting for it" in output(tmp_path, "second"),
    )
    sim.app.config = replace(sim.app.config, latency_ms=latency)
    assert first.wait(DEADLINE) == 0, output(tmp_path, "first")
    assert second.wait(DEADLINE) == 0, output(tmp_path, "second")
    text = output(tmp_path, "second")
    assert f"backfill of customers: held by backfill run {first_run} on " in text
    assert "waiting for it (--no-wait skips)" in text
    assert f"backfill of customers: done by backfill run {first_run}" in text
    assert guests(database_url) == len(sim.data.customers)


HOLDER = """
import asyncio, sys
from shared.db.store import PsycopgTransport, Store
from shared.sync.liveness import live_run, unit

async def main() -> None:
    store = Store(await PsycopgTransport.connect(sys.argv[1], max_size=2))
    async with live_run(store, "backfill") as run, unit(store, run, sys.argv[2]):
        print(run.id, flush=True)
        await asyncio.sleep(3600)

asyncio.run(main())
"""


def test_no_wait_skips_work_held_elsewhere_with_exit_7_and_no_full_bar(
    database_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """Another live process holds the customers' first load: `--no-wait` says who and since
    when, skips it with exit 7, and its progress bar is not full."""
    env = env_for(database_url, sim)
    chain = sim.data.enterprises[0]["ChainId"]
    holder = subprocess.Popen(  # noqa: S603 - our own code
        [sys.executable, "-c", HOLDER, database_url, f"backfill:{chain}:customers"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert holder.stdout is not None
        holder_run = holder.stdout.readline().strip()
        second = run(env, "sync", "backfill", "--entity", "customers", "--no-wait")
    finally:
        kill9(holder)
        holder.stdout.close()
    text = " ".join((second.stdout + second.stderr).split())
    assert second.returncode == 7, text
    assert f"backfill of customers: held by backfill run {holder_run} on " in text
    assert " UTC; skipped (--no-wait)" in text
    assert "1 load(s) held by another live run; skipped (--no-wait)" in text
    assert guests(database_url) == 0
    bars = re.findall(r"(\d+)/(\d+)", text)
    assert bars, text
    assert all(done != total for done, total in bars), text


def test_the_claims_of_a_killed_events_process_are_processed_at_once_by_the_next(
    database_url: str, sim: Simulator, tmp_path: Path
) -> None:
    env = env_for(database_url, sim)
    loaded = run(env, "sync", "backfill", "--entity", "customers")
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    enterprise = sim.data.enterprises[0]["Id"]
    with psycopg.connect(database_url, autocommit=True) as conn:
        for customer in list(sim.data.customers)[:5]:
            body = (
                f'{{"EnterpriseId": "{enterprise}", "Events": [{{"Discriminator":'
                f' "CustomerUpdated", "Value": {{"Id": "{customer}"}}}}]}}'
            )
            conn.execute("select public.inbox_add('general_webhook', %s, %s)", (body, enterprise))
    sim.app.config = replace(sim.app.config, latency_ms=3000)  # killed while it fetches
    worker = start(env, tmp_path, "events", "events", "process")
    processing = "select count(*) from public.event_inbox where status = 'processing'"
    wait_until("the events process to claim its batch", lambda: value(database_url, processing) > 0)
    kill9(worker)
    assert value(database_url, processing) == 5
    sim.app.config = replace(sim.app.config, latency_ms=0)

    again = run(env, "events", "process")
    assert again.returncode == 0, again.stdout + again.stderr
    done = "select count(*) from public.event_inbox where status = 'done'"
    assert (value(database_url, done), value(database_url, processing)) == (5, 0)
    abandoned = value(
        database_url,
        "select error from public.sync_runs where job = 'process_events' and status = 'abandoned'",
    )
    assert "its database session is gone" in abandoned
