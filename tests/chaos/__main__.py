"""The chaos soak: ``python -m tests.chaos --customers 5000 --minutes 5`` (``make chaos``).

Runs the scenario of :mod:`tests.chaos.harness` with a steady phase of ``--minutes`` of random
faults after one round of each kind, prints the table and the time it took, and exits 1 when
anything was lost, duplicated or stale, a staff edit is unaccounted for, or a run was left
``running``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tests.chaos.harness import ChaosConfig, run_chaos


def _echo(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--minutes", type=float, default=5.0, help="steady phase of random faults")
    parser.add_argument("--seed", type=int, default=1125)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=200,
        help="requests per token per 30 s (Mews: 200), simulator and workers alike",
    )
    parser.add_argument(
        "--no-kill-push",
        action="store_true",
        help="do not kill push",
    )
    parser.add_argument("--workdir", type=Path, help="keep logs and data here")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)

    started = time.monotonic()
    config = ChaosConfig(
        seed=args.seed,
        customers=args.customers,
        minutes=args.minutes,
        latency_ms=args.latency_ms,
        rate_limit=args.rate_limit,
        kill_push=not args.no_kill_push,
        workdir=args.workdir,
        keep=args.workdir is not None,
        echo=None if args.quiet else _echo,
    )
    report = run_chaos(config)
    sys.stdout.write(report.text() + "\n")
    sys.stdout.write(f"total time: {time.monotonic() - started:.0f} s\n")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
