"""The Mews simulator in its own process for benchmarks (so its CPU is not ours)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def simulator_process(*args: str, startup_timeout: float = 180.0) -> Iterator[str]:
    """``guesthub simulator <args>`` on a free port; yields its base URL."""
    port = _free_port()
    command = [
        sys.executable,
        "-c",
        "from shared.cli import main; main()",
        "simulator",
        "--port",
        str(port),
        *args,
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # noqa: S603
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"simulator exited: {process.stderr.read().decode() if process.stderr else ''}"
                )
            try:
                httpx.get(url + "/_admin/stats", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("simulator did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def stats(url: str) -> dict[str, Any]:
    """The simulator's counters (``/_admin/stats``): requests, 429s, most in a window, per token."""
    result: dict[str, Any] = httpx.get(url + "/_admin/stats", timeout=10).json()
    return result


def reset_stats(url: str) -> None:
    httpx.post(url + "/_admin/stats/reset", timeout=10)
