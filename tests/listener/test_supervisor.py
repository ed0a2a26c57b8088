"""One process, one WebSocket per connection: the supervisor against the simulator's WebSocket
and a real database."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from shared.connections.model import Connection
from shared.db.store import Store
from shared.listener.health import health_app
from shared.listener.supervisor import Plan, Supervisor, plan
from shared.simulator.running import Simulator
from tests.listener.support import (
    BAD_TOKEN,
    GOOD_TOKENS,
    Registry,
    connection,
    event_ids,
    inbox,
    listener_factory,
    wait_for,
)

pytestmark = pytest.mark.anyio
A = connection("Hotel A", GOOD_TOKENS[0])
B = connection("Hotel B", GOOD_TOKENS[1])


# -- the plan (pure) ------------------------------------------------------------------------------


def test_a_refresh_starts_new_connections_and_stops_gone_ones() -> None:
    c = connection("Hotel C", GOOD_TOKENS[2])
    assert plan({A.id: A, B.id: B}, [B, c]) == Plan(start=(c,), stop=(A.id,))


def test_a_changed_token_restarts_the_socket_and_a_new_name_only_updates_it() -> None:
    rotated = Connection(id=A.id, access_token=B.access_token, name=A.name)
    renamed = Connection(id=B.id, access_token=B.access_token, name="Hotel B (renamed)")
    assert plan({A.id: A, B.id: B}, [rotated, renamed]) == Plan(
        restart=(rotated,), update=(renamed,)
    )


def test_a_socket_that_ended_on_its_own_is_started_again() -> None:
    assert plan({A.id: A, B.id: B}, [A, B], ended=[B.id]) == Plan(restart=(B,))


def test_nothing_changes_when_the_registry_says_the_same() -> None:
    assert plan({A.id: A}, [A]) == Plan()


# -- over real sockets ----------------------------------------------------------------------------


class Catchups:
    """Catch-ups by connection id (the supervisor hands each its current connection)."""

    def __init__(self) -> None:
        self.seen: list[Connection] = []
        self.failing: set[str] = set()

    async def __call__(self, conn: Connection) -> None:
        self.seen.append(conn)
        if conn.id in self.failing:
            raise RuntimeError("catch-up failed")


@asynccontextmanager
async def supervising(
    store: Store,
    websocket_url: str,
    registry: Registry,
    catch_ups: Catchups | None = None,
    *,
    refresh_seconds: float = 3600.0,
) -> AsyncIterator[Supervisor]:
    supervisor = Supervisor(
        registry,
        listener_factory(store, websocket_url),
        catch_ups or Catchups(),
        refresh_seconds=refresh_seconds,
        flush_seconds=5,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(supervisor.run(stop))
    try:
        yield supervisor
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def status(supervisor: Supervisor, conn: Connection) -> str | None:
    socket = supervisor.sockets.get(conn.id)
    return socket.listener.state.status if socket else None


def open_sockets(simulator: Simulator) -> int:
    return int(simulator.set_faults()["websockets"])


async def health(supervisor: Supervisor) -> httpx.Response:
    transport = httpx.ASGITransport(app=health_app(supervisor, max_disconnected_seconds=300))
    async with httpx.AsyncClient(transport=transport, base_url="http://h") as client:
        return await client.get("/healthz")


async def test_two_connections_hold_two_sockets_and_store_each_frame_with_its_connection(
    simulator: Simulator, store: Store, database_url: str, websocket_url: str
) -> None:
    catch_ups = Catchups()
    async with supervising(store, websocket_url, Registry(A, B), catch_ups) as supervisor:
        await wait_for(lambda: status(supervisor, A) == status(supervisor, B) == "connected")
        await wait_for(lambda: open_sockets(simulator) == 2)
        changed = await asyncio.to_thread(simulator.mutate, reservations_updated=2)
        await wait_for(
            lambda: all(s.listener.state.stored == 1 for s in supervisor.sockets.values())
        )

        rows = inbox(database_url)
        assert sorted(i for i, _ in rows) == sorted([A.id, B.id])
        assert all(event_ids(body) == set(changed["reservations"]) for _, body in rows)
        assert sorted(c.id for c in catch_ups.seen) == sorted([A.id, B.id])  # one each

        answer = await health(supervisor)
        assert (answer.status_code, answer.json()["status"]) == (200, "ok")
        assert [(c["label"], c["status"], c["stored"]) for c in answer.json()["connections"]] == [
            ("Hotel A", "connected", 1),
            ("Hotel B", "connected", 1),
        ]
    await wait_for(lambda: open_sockets(simulator) == 0)  # stopped: every socket closed


async def test_a_refused_token_or_failing_catch_up_leaves_the_other_connection_working(
    simulator: Simulator, store: Store, database_url: str, websocket_url: str
) -> None:
    refused = connection("Hotel Refused", BAD_TOKEN)
    catch_ups = Catchups()
    catch_ups.failing.add(A.id)
    async with supervising(store, websocket_url, Registry(A, refused), catch_ups) as supervisor:
        await wait_for(lambda: status(supervisor, A) == "connected")
        await wait_for(lambda: status(supervisor, refused) == "unauthorized")
        changed = await asyncio.to_thread(simulator.mutate, resources_updated=1)
        await wait_for(lambda: supervisor.sockets[A.id].listener.state.stored == 1)

        [(integration_id, body)] = inbox(database_url)
        assert (integration_id, event_ids(body)) == (A.id, set(changed["resources"]))
        answer = await health(supervisor)
        assert (answer.status_code, answer.json()["status"]) == (200, "degraded")
        entries = {c["label"]: c for c in answer.json()["connections"]}
        assert entries["Hotel A"]["status"] == "connected"
        assert (entries["Hotel A"]["catch_ups"], entries["Hotel A"]["catch_up_failures"]) == (0, 1)
        assert entries["Hotel A"]["last_error"] == "catch-up: RuntimeError"
        assert entries["Hotel Refused"]["status"] == "unauthorized"
        assert entries["Hotel Refused"]["last_error"] == "upgrade refused: HTTP 403"
        assert BAD_TOKEN not in answer.text
        assert A.access_token.get_secret_value() not in answer.text


async def test_connections_added_and_removed_at_a_refresh_start_and_stop_their_sockets(
    simulator: Simulator, store: Store, database_url: str, websocket_url: str
) -> None:
    registry = Registry(A)
    async with supervising(store, websocket_url, registry, refresh_seconds=0.2) as supervisor:
        await wait_for(lambda: status(supervisor, A) == "connected")
        first_a = supervisor.sockets[A.id]

        registry.connections = [A, B]  # added
        await wait_for(lambda: status(supervisor, B) == "connected")
        assert supervisor.sockets[A.id] is first_a  # untouched

        registry.connections = [B]  # removed (deleted, disabled, or its token refused by REST)
        await wait_for(lambda: A.id not in supervisor.sockets and first_a.task.done())
        await wait_for(lambda: open_sockets(simulator) == 1)
        changed = await asyncio.to_thread(simulator.mutate, reservations_updated=1)
        await wait_for(lambda: supervisor.sockets[B.id].listener.state.stored == 1)
        assert [i for i, _ in inbox(database_url)] == [B.id]
        assert event_ids(inbox(database_url)[0][1]) == set(changed["reservations"])
        assert first_a.listener.state.frames == 0

        registry.fail = RuntimeError("database away")  # the registry unreadable: sockets kept
        await wait_for(lambda: supervisor.registry.failures >= 1)
        assert status(supervisor, B) == "connected"
        assert (await health(supervisor)).json()["registry"]["last_error"] == "RuntimeError"


async def test_a_rotated_token_restarts_the_socket_with_the_new_token(
    simulator: Simulator, store: Store, database_url: str, websocket_url: str
) -> None:
    """Refused with the old token; the registry hands the new one (IntegrationApiKeyCreated):
    the socket is replaced and connects, its frames still stored as the same connection."""
    old = Connection(id=A.id, access_token=connection("", BAD_TOKEN).access_token, name="Hotel A")
    registry = Registry(old, B)
    catch_ups = Catchups()
    async with supervising(store, websocket_url, registry, catch_ups) as supervisor:
        await wait_for(lambda: status(supervisor, A) == "unauthorized")
        await wait_for(lambda: status(supervisor, B) == "connected")
        before, b_socket = supervisor.sockets[A.id], supervisor.sockets[B.id]

        registry.connections = [A, B]  # same id, new token
        await supervisor.refresh()
        await wait_for(lambda: status(supervisor, A) == "connected")
        assert supervisor.sockets[A.id] is not before
        await wait_for(before.task.done)
        assert supervisor.sockets[B.id] is b_socket  # the other connection untouched

        changed = await asyncio.to_thread(simulator.mutate, reservations_updated=1)
        await wait_for(lambda: supervisor.sockets[A.id].listener.state.stored == 1)
        await wait_for(lambda: b_socket.listener.state.stored == 1)
        rows = inbox(database_url)
        assert sorted(i for i, _ in rows) == sorted([A.id, B.id])
        assert all(event_ids(body) == set(changed["reservations"]) for _, body in rows)
        assert [c.id for c in catch_ups.seen].count(A.id) == 1  # at the new socket's connect

        # a second rotation, from one good token to another: replaced again
        current = supervisor.sockets[A.id]
        registry.connections = [Connection(id=A.id, access_token=B.access_token, name="A"), B]
        await supervisor.refresh()
        await wait_for(lambda: current.task.done() and status(supervisor, A) == "connected")
        assert supervisor.sockets[A.id].listener.state.connects == 1
        answer = (await health(supervisor)).json()
        assert [c["label"] for c in answer["connections"]] == ["A", "Hotel B"]
        assert json.dumps(answer).count(BAD_TOKEN) == 0
