"""What the listener tests share: waiting for a condition, reading the inbox, registries and
listeners built for tests (short backoffs, the simulator's tokens)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from pydantic import SecretStr

from shared.connections.model import Connection
from shared.db.store import Store
from shared.listener.backoff import Backoff
from shared.listener.listener import CatchUp, Listener
from shared.listener.supervisor import ListenerFactory
from shared.simulator.server import SimulatorConfig

CLIENT_TOKEN = SimulatorConfig().client_tokens[0]
# three tokens the simulator accepts by default (all of one property), and one it refuses
GOOD_TOKENS = SimulatorConfig().access_tokens[:3]
BAD_TOKEN = "BAD0" * 8 + "-" + "0" * 31
DEADLINE = 30.0  # generous: a loaded 2-core machine


async def wait_for(predicate: Callable[[], Any], limit: float = DEADLINE, what: str = "") -> None:
    """Poll ``predicate`` until it holds; fail after ``limit`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not predicate():
        assert loop.time() < deadline, f"timed out waiting for {what or predicate}"
        await asyncio.sleep(0.05)


def connection(name: str, token: str, conn_id: str | None = None) -> Connection:
    return Connection(
        id=conn_id or str(uuid.uuid4()), access_token=SecretStr(token), source="manual", name=name
    )


class Registry:
    """The active connections, as a test sets them (a stand-in for the connections table)."""

    def __init__(self, *connections: Connection) -> None:
        self.connections = list(connections)
        self.fail: Exception | None = None

    async def __call__(self) -> list[Connection]:
        if self.fail is not None:
            raise self.fail
        return list(self.connections)


def listener_factory(
    store: Store, websocket_url: str, *, grace: float = 60.0, refused_backoff: Backoff | None = None
) -> ListenerFactory:
    """Listeners as the service builds them, with backoffs short enough for tests."""

    def new_listener(conn: Connection, catch_up: CatchUp) -> Listener:
        return Listener(
            store,
            websocket_url=websocket_url,
            client_token=SecretStr(CLIENT_TOKEN),
            access_token=conn.access_token,
            integration_id=conn.id,
            label=conn.label(),
            catch_up=catch_up,
            backoff=Backoff(base=0.2, cap=0.5),
            store_backoff=Backoff(base=0.05, cap=0.2),
            refused_backoff=refused_backoff or Backoff(base=0.5, cap=1.0),
            unauthorized_grace_seconds=grace,
            rng=random.Random(7),
        )

    return new_listener


def inbox(url: str) -> list[tuple[Any, ...]]:
    """(integration id or None, body) of every stored frame, in order."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select integration_id::text, body from public.event_inbox"
            " where source = 'websocket' order by id"
        ).fetchall()


def event_ids(body: dict[str, Any]) -> set[str]:
    return {e["Id"] for e in body["Events"]}
