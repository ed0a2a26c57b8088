"""A rerun right after ``kill -9`` of a first load: how long until the load is complete, what
is missing after the rerun, and what the rerun and ``guesthub status`` say.

    python -m bench.crash_rerun [--customers 20000] [--kill-at 0.35]

Against the simulator in its own process (the real limit, 50 ms latency) and a fresh database:
``guesthub sync backfill`` starts, is killed (``kill -9`` of its process group) once
``--kill-at`` of the customers are stored, then is run again. Printed: ``guesthub status``'s
exit code after the kill, the rerun's exit code, seconds and what it said about the killed
load, the customers missing after it, ``guesthub status``'s exit code after it, and
(when the rerun left the load incomplete) the seconds until further reruns completed it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import psycopg

from bench._db import LOCAL_SERVER, fresh_database
from bench._sim import simulator_process

CLI = [sys.executable, "-c", "from shared.cli import main; main()"]


def customers(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("select count(*) from public.guests").fetchone()
    return int(row[0]) if row else 0


def command(env: dict[str, str], *args: str, timeout: float = 900) -> tuple[int, float, str]:
    """Run ``guesthub <args>``: exit code, seconds, output."""
    started = time.monotonic()
    done = subprocess.run(  # noqa: S603 - our own CLI
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    return done.returncode, time.monotonic() - started, done.stdout + done.stderr


def killed_load(env: dict[str, str], url: str, at: int) -> float:
    """Start a first load and kill -9 it once ``at`` customers are stored; its seconds."""
    started = time.monotonic()
    proc = subprocess.Popen(  # noqa: S603 - our own CLI
        [*CLI, "sync", "backfill"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    while proc.poll() is None and customers(url) < at:
        time.sleep(0.02)
    if proc.poll() is not None:
        raise SystemExit(f"the first load ended (exit {proc.returncode}) before {at} customers")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return time.monotonic() - started


def scenario(total: int, kill_at: float) -> dict[str, Any]:
    with (
        simulator_process("--customers", str(total), "--latency-ms", "50") as sim,
        fresh_database(LOCAL_SERVER) as url,
    ):
        env = {**os.environ, "DATABASE_URL": url, "MEWS_PLATFORM_URL": sim, "NO_COLOR": "1"}
        env.pop("SUPABASE_URL", None)
        killed_after = killed_load(env, url, int(total * kill_at))
        stored_at_kill = customers(url)
        status_after_kill, _, _ = command(env, "status")
        started = time.monotonic()
        code, seconds, output = command(env, "sync", "backfill")
        missing = total - customers(url)
        status_code, _, _ = command(env, "status")
        reruns = 0
        while customers(url) < total and time.monotonic() - started < 900:
            reruns += 1
            command(env, "sync", "backfill")
            time.sleep(1)  # an operator trying again
        return {
            "customers": total,
            "killed after seconds": round(killed_after, 1),
            "stored at kill": stored_at_kill,
            "status exit code after the kill": status_after_kill,
            "rerun exit code": code,
            "rerun seconds": round(seconds, 1),
            "missing after rerun": missing,
            "status exit code after rerun": status_code,
            "further reruns": reruns,
            "seconds from the rerun's start to a complete load": round(
                time.monotonic() - started, 1
            ),
            "rerun said": [
                line
                for line in output.splitlines()
                if any(w in line for w in ("held", " over ", "died", "Mews requests", "customers:"))
            ],
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--kill-at", type=float, default=0.35)
    args = parser.parse_args()
    print(json.dumps(scenario(args.customers, args.kill_at), indent=2))


if __name__ == "__main__":
    main()
