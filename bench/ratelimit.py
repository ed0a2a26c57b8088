"""A first load against a server that limits the token below MEWS_RATE_LIMIT.

    python -m bench.ratelimit [--customers 3000] [--server-limit 50] [--server-window 30]
                              [--rate-limit 200] [--runs 1]

Mews may limit a token below the documented 200 requests per 30 s. The simulator (its own
process) limits it to ``--server-limit`` per ``--server-window``; ``guesthub sync backfill``
(its own process, as a person runs it) is configured with ``MEWS_RATE_LIMIT=--rate-limit``.
Each run loads into a fresh database (the token's first contact with its limit), then loads
again from scratch (``--restart``) into the same one (what the token learned is kept). Prints
per load: the requests the simulator saw for the token while one of its 429's Retry-After was
still running (all, and those inside the first 429's: already on the wire when the token met
its first 429), its 429s, the requests it accepted, the most it accepted in one window, the
command's exit status and wall time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import Any

from bench._db import LOCAL_SERVER, fresh_database
from bench._sim import reset_stats, simulator_process, stats


def first_load(url: str, db: str, rate_limit: int, *extra: str) -> dict[str, Any]:
    """``guesthub sync backfill`` in a child process: its exit status and wall time."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env |= {
        "DATABASE_URL": db,
        "MEWS_PLATFORM_URL": url,
        "MEWS_RATE_LIMIT": str(rate_limit),
        "LOG_LEVEL": "WARNING",
        "NO_COLOR": "1",
        "TERM": "dumb",
    }
    command = [
        sys.executable,
        "-c",
        "from shared.cli import main; main()",
        "sync",
        "backfill",
        *extra,
    ]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, check=False)  # noqa: S603
    seconds = time.perf_counter() - started
    tail = done.stdout.decode(errors="replace").strip().splitlines()[-3:]
    return {"exit": done.returncode, "seconds": seconds, "tail": tail}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--server-limit", type=int, default=50)
    parser.add_argument("--server-window", type=float, default=30.0)
    parser.add_argument("--rate-limit", type=int, default=200)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--server-url", default=LOCAL_SERVER)
    args = parser.parse_args()
    print(
        f"first load of {args.customers:,} customers: server {args.server_limit} per"
        f" {args.server_window:g} s, MEWS_RATE_LIMIT {args.rate_limit}"
    )
    print(
        f"{'run':>3} {'load':>7} {'during Retry-After':>18} {'in the first':>12} {'429s':>5}"
        f" {'accepted':>8} {'max/window':>10} {'exit':>4} {'seconds':>8}"
    )
    sim_args = [
        "--customers",
        str(args.customers),
        "--rate-limit",
        str(args.server_limit),
        "--rate-window",
        str(args.server_window),
    ]
    with simulator_process(*sim_args) as url:
        for run in range(1, args.runs + 1):
            with fresh_database(args.server_url) as db:
                for load, extra in (("first", ()), ("again", ("--restart",))):
                    reset_stats(url)
                    result = first_load(url, db, args.rate_limit, *extra)
                    seen = stats(url)
                    print(
                        f"{run:>3} {load:>7} {seen['during_retry_after']:>18}"
                        f" {seen['during_first_retry_after']:>12} {seen['rate_limited']:>5}"
                        f" {seen['requests']:>8} {seen['max_in_window']:>10} {result['exit']:>4}"
                        f" {result['seconds']:>8.1f}"
                    )
                    if result["exit"]:
                        print("    " + "\n    ".join(result["tail"]))


if __name__ == "__main__":
    main()
