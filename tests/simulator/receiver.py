"""A local webhook receiver for simulator tests: records every POST and lets a test wait for a
condition on what arrived (never sleep-and-hope)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shared.netserve import serve_in_thread
from shared.settings import DEMO_CLIENT_TOKEN
from shared.simulator.running import Simulator

API = "/api/connector/v1/"
CLIENT_TOKEN = DEMO_CLIENT_TOKEN
WAIT_SECONDS = 60.0  # generous for a loaded 2-core machine; a met condition returns at once


class Receiver:
    """What arrived, as (path, body) in arrival order."""

    def __init__(self) -> None:
        self.url = ""
        self.received: list[tuple[str, dict[str, Any]]] = []
        self._arrived = threading.Condition()

    async def _hook(self, request: Request) -> Response:
        body = json.loads(await request.body())
        with self._arrived:
            self.received.append((request.url.path, body))
            self._arrived.notify_all()
        return Response(status_code=202)

    def bodies(self, path: str) -> list[dict[str, Any]]:
        with self._arrived:
            return [body for at, body in self.received if at == path]

    def wait_for(self, path: str, done: Callable[[list[dict[str, Any]]], bool]) -> list[Any]:
        with self._arrived:
            met = self._arrived.wait_for(
                lambda: done([b for at, b in self.received if at == path]), WAIT_SECONDS
            )
        assert met, f"gave up waiting; received {self.received}"
        return self.bodies(path)


@contextmanager
def receiving() -> Iterator[Receiver]:
    receiver = Receiver()
    app = Starlette(routes=[Route("/{path:path}", receiver._hook, methods=["POST"])])
    with serve_in_thread(app) as server:
        receiver.url = server.http_url
        yield receiver


def call(
    sim: Simulator, token: str, operation: str, body: dict[str, Any] | None = None
) -> httpx.Response:
    """One Connector API request with ``token`` as the AccessToken."""
    tokens = {"ClientToken": CLIENT_TOKEN, "AccessToken": token, "Client": "tests 1.0"}
    return httpx.post(sim.url + API + operation, json={**tokens, **(body or {})}, timeout=30)


def customer_ids(sim: Simulator, token: str, body: dict[str, Any]) -> set[str]:
    """Every customer id ``customers/getAll`` returns for ``body``, walking the pages."""
    found: set[str] = set()
    limitation: dict[str, Any] = {"Count": 1000}
    while True:
        answer = call(
            sim,
            token,
            "customers/getAll",
            {"ActivityStates": ["Active", "Deleted"], **body, "Limitation": limitation},
        )
        assert answer.status_code == 200, answer.text
        page = answer.json()
        found |= {c["Id"] for c in page["Customers"]}
        if page["Cursor"] is None or len(page["Customers"]) < 1000:
            return found
        limitation = {"Count": 1000, "Cursor": page["Cursor"]}
