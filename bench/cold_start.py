"""Cold starts: how long a fresh process takes before it does anything useful.

    python -m bench.cold_start [--runs 5]

1. ``python -c "import functions.main"`` — what every Cloud Functions instance imports first;
2. ``guesthub --help`` — the CLI's start;
3. ``functions-framework --target mews_webhook --source functions/main.py``: from process start
   to the first 202 it answers (a fresh migrated database on 127.0.0.1:5432, WEBHOOK_SECRET set).

Each figure is the median of ``--runs`` fresh processes (wall time).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

from bench._db import fresh_database

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SECRET = "cold-start-secret"


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, check=True)  # noqa: S603
    return time.perf_counter() - started


def first_202(db: str, env: dict[str, str]) -> float:
    """Seconds from starting functions-framework until mews_webhook answers 202."""
    port = _free_port()
    command = [
        str(BIN / "functions-framework"),
        "--target=mews_webhook",
        "--source=functions/main.py",
        f"--port={port}",
    ]
    env = env | {"DATABASE_URL": db, "WEBHOOK_SECRET": SECRET, "LOG_LEVEL": "WARNING"}
    body = _webhook_body()
    started = time.perf_counter()
    process = subprocess.Popen(  # noqa: S603 - our own executable
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"functions-framework exited with {process.returncode}")
            try:
                answer = httpx.post(f"http://127.0.0.1:{port}/?Token={SECRET}", content=body)
            except httpx.TransportError:
                time.sleep(0.005)
                continue
            if answer.status_code != 202:
                raise RuntimeError(f"mews_webhook answered {answer.status_code}: {answer.text}")
            return time.perf_counter() - started
    finally:
        process.terminate()
        process.wait(timeout=10)


def _webhook_body() -> bytes:
    """A General Webhook naming one changed customer (a new one each time)."""
    event = {"Discriminator": "CustomerUpdated", "Value": {"Id": str(uuid.uuid4())}}
    return json.dumps(
        {
            "EnterpriseId": "8c7e9a52-0000-4000-8000-000000000001",
            "IntegrationId": "1a1a1a1a-0000-4000-8000-000000000001",
            "Events": [event],
        }
    ).encode()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def median(runs: int, sample: Callable[[], float]) -> tuple[float, list[float]]:
    samples = [sample() for _ in range(runs)]
    return statistics.median(samples), samples


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    keep = ("PATH", "HOME", "LANG", "TMPDIR")
    env = {k: v for k, v in os.environ.items() if k in keep} | {"PYTHONPATH": str(ROOT)}
    figures = {
        "import functions.main": median(
            args.runs, lambda: timed([sys.executable, "-c", "import functions.main"], env)
        ),
        "guesthub --help": median(args.runs, lambda: timed([str(BIN / "guesthub"), "--help"], env)),
    }
    with fresh_database() as db:
        figures["mews_webhook: start → first 202"] = median(args.runs, lambda: first_202(db, env))
    for name, (value, samples) in figures.items():
        runs = ", ".join(f"{s:.2f}" for s in samples)
        print(f"{name:<34} median {value:.2f} s  ({runs})")


if __name__ == "__main__":
    main()
