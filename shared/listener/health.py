"""The listener's health: one entry per connection, and one verdict for the process.

``GET /healthz`` answers::

    {
      "status": "ok" | "degraded" | "unhealthy",
      "connections": [
        {"id": "…", "label": "Hotel A", "status": "connected" | "degraded" | "disconnected"
                                                 | "unauthorized",
         "healthy": true, "disconnected_seconds": null, "connects": 1, "frames": 4,
         "stored": 4, "buffered": 0, "store_ok": true, "store_errors": 0, "overflows": 0,
         "catch_ups": 1, "catch_up_failures": 0, "refusals": 0, "last_error": null}
      ],
      "registry": {"refreshes": 3, "failures": 0, "seconds_since_refresh": 12.5,
                   "last_error": null},
      "max_disconnected_seconds": 300.0,
      "connected": true, "connects": 1, "frames": 4, "stored": 4, "buffered": 0,
      "store_ok": true, "catch_ups": 1
    }

The rule: **503 only when some connection has been disconnected longer than
``max_disconnected_seconds``** (the process may be stuck; a restart is worth trying). Everything
else answers 200: a connection whose token Mews refused (``unauthorized``) is the property's
matter, which no restart can fix, and restarting would drop every other property's socket; a
``degraded`` connection (the database away) keeps its frames in memory, which a restart would
lose; a registry that cannot be read (``registry.last_error``) keeps the sockets it has.
``status`` says ``ok`` when every socket is connected (or there are none), ``degraded`` when some
are not yet or cannot be, ``unhealthy`` with the 503.

The totals at the end (``connected``: every socket open, at least one; the others summed) keep
the single-socket shape that scripts and the chaos suite read. No token is ever part of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from shared.connections.model import Connection
from shared.listener.state import ListenerState
from shared.listener.supervisor import RegistryState, Supervisor

SUMMED = ("connects", "frames", "stored", "buffered", "catch_ups")


def connection_health(
    connection: Connection, state: ListenerState, now: float, max_disconnected_seconds: float
) -> dict[str, Any]:
    down = state.disconnected_seconds(now)
    return {
        "id": connection.id,
        "label": connection.label(),
        "status": state.status,
        "healthy": state.healthy(max_disconnected_seconds, now),
        "disconnected_seconds": None if down is None else round(down, 1),
        **{k: v for k, v in state.snapshot().items() if k not in ("status", "connected")},
    }


def registry_health(registry: RegistryState, now: float) -> dict[str, Any]:
    since = registry.last_refresh_at
    return {
        "refreshes": registry.refreshes,
        "failures": registry.failures,
        "seconds_since_refresh": None if since is None else round(now - since, 1),
        "last_error": registry.last_error,
    }


def health_report(
    sockets: Iterable[tuple[Connection, ListenerState]],
    registry: RegistryState,
    *,
    max_disconnected_seconds: float,
    now: float | None = None,
) -> tuple[int, dict[str, Any]]:
    """The status code and the body for each (connection, its socket's state) (pure, given
    ``now``)."""
    now = time.monotonic() if now is None else now
    held = sorted(sockets, key=lambda s: (s[0].label(), s[0].id))
    entries = [connection_health(c, state, now, max_disconnected_seconds) for c, state in held]
    states = [state for _, state in held]
    healthy = all(e["healthy"] for e in entries)
    every_connected = all(e["status"] == "connected" for e in entries)
    status = "unhealthy" if not healthy else "ok" if every_connected else "degraded"
    body = {
        "status": status,
        "connections": entries,
        "registry": registry_health(registry, now),
        "max_disconnected_seconds": max_disconnected_seconds,
        "connected": bool(states) and all(s.connected for s in states),
        **{key: sum(getattr(s, key) for s in states) for key in SUMMED},
        "store_ok": all(s.store_ok for s in states),
    }
    return (200 if healthy else 503), body


def health_app(
    supervisor: Supervisor,
    max_disconnected_seconds: float = 300.0,
    realtime: Callable[[], dict[str, Any]] | None = None,
) -> Starlette:
    """``realtime``: the worker's state, shown under ``"realtime"`` (it never changes the
    verdict: the scheduled jobs cover a worker in trouble)."""

    async def health(_: Request) -> JSONResponse:
        code, body = health_report(
            [(s.connection, s.listener.state) for s in supervisor.sockets.values()],
            supervisor.registry,
            max_disconnected_seconds=max_disconnected_seconds,
        )
        if realtime is not None:
            body["realtime"] = realtime()
        return JSONResponse(body, status_code=code)

    return Starlette(routes=[Route("/healthz", health), Route("/", health)])
