"""The service: the real catch-up per connection, and a SIGTERM that closes every socket."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from datetime import timedelta

import httpx
import psycopg
import pytest

from shared.connections.model import Connection
from shared.connections.registry import connection_id_for
from shared.db.store import Store
from shared.listener.catch_up import catch_up
from shared.listener.service import serve, supervisor_for
from shared.listener.supervisor import Supervisor
from shared.settings import Settings, load_settings
from shared.simulator.running import Simulator
from shared.sync.connect import connected_engine
from shared.sync.entities import SPECS
from tests.listener.support import (
    GOOD_TOKENS,
    Registry,
    connection,
    listener_factory,
    wait_for,
)

pytestmark = pytest.mark.anyio
A = connection("Hotel A", GOOD_TOKENS[0])
B = connection("Hotel B", GOOD_TOKENS[1])


def settings_for(simulator: Simulator, database_url: str, websocket_url: str) -> Settings:
    return load_settings(
        mews_platform_url=simulator.url,
        mews_websocket_url=websocket_url,
        database_url=database_url,
        mews_rate_limit=10_000,
    )


def catch_up_runs(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select connection_id::text, status from public.sync_runs"
            " where job = 'listener_catch_up' order by started_at"
        ).fetchall()


def reservation_states(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        return {
            str(i): s for i, s in conn.execute("select mews_id, state from public.reservations")
        }


async def test_each_connection_catches_up_with_its_own_token_after_every_connect(
    simulator: Simulator, store: Store, database_url: str, websocket_url: str
) -> None:
    settings = settings_for(simulator, database_url, websocket_url)
    async with connected_engine(
        settings, store, access_token=A.access_token, lag=timedelta(0)
    ) as engine:
        await engine.backfill(SPECS["reservations"])
        await engine.poll(SPECS["reservations"])  # the catch-up polls from where the polls stand

    async def catching_up(conn: Connection) -> None:
        await catch_up(settings, store, conn, lag=timedelta(0))  # Mews' now, for the test

    supervisor = Supervisor(
        Registry(A, B), listener_factory(store, websocket_url), catching_up, refresh_seconds=3600
    )
    stop = asyncio.Event()
    task = asyncio.create_task(supervisor.run(stop))

    def catch_ups() -> list[int]:
        return [supervisor.sockets[c.id].listener.state.catch_ups for c in (A, B)]

    await wait_for(lambda: len(supervisor.sockets) == 2 and catch_ups() == [1, 1])
    await asyncio.to_thread(simulator.set_faults, drop_websockets=True, refuse_seconds=2)
    gap = await asyncio.to_thread(simulator.mutate, reservations_updated=3)  # heard by nobody
    await wait_for(lambda: catch_ups() == [2, 2])

    states = reservation_states(database_url)
    for reservation_id in gap["reservations"]:
        assert states[reservation_id] == simulator.data.reservations[reservation_id]["State"]
    runs = catch_up_runs(database_url)
    assert sorted(runs) == sorted([(A.id, "succeeded"), (B.id, "succeeded")] * 2)
    stop.set()
    await asyncio.wait_for(task, 30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_sigterm_closes_every_socket_and_the_service_returns(
    simulator: Simulator, database_url: str, websocket_url: str
) -> None:
    settings = settings_for(simulator, database_url, websocket_url)
    port = free_port()
    service = asyncio.create_task(
        serve(settings, port=port, source=Registry(A, B), refresh_seconds=3600)
    )

    async def both_connected() -> bool:
        async with httpx.AsyncClient() as client:
            try:
                answer = await client.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            except httpx.TransportError:
                return False  # not listening yet
        body = answer.json()
        return bool(body["status"] == "ok" and len(body["connections"]) == 2)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while not await both_connected():
        assert loop.time() < deadline, "the service did not connect both sockets"
        await asyncio.sleep(0.1)
    await wait_for(lambda: simulator.set_faults()["websockets"] == 2)

    os.kill(os.getpid(), signal.SIGTERM)  # what Cloud Run sends; the service's handler stops it
    await asyncio.wait_for(service, 30)
    await wait_for(lambda: simulator.set_faults()["websockets"] == 0)


async def test_the_service_listens_for_the_registered_connections_the_environment_s_included(
    simulator: Simulator, store: Store, database_url: str, websocket_url: str
) -> None:
    """No registry given: the connections table, where MEWS_ACCESS_TOKEN is one connection."""
    settings = load_settings(
        mews_platform_url=simulator.url,
        mews_websocket_url=websocket_url,
        database_url=database_url,
        mews_access_token=GOOD_TOKENS[2],
    )
    supervisor = supervisor_for(settings, store)
    try:
        await supervisor.refresh()
        assert list(supervisor.sockets) == [connection_id_for(GOOD_TOKENS[2])]
        only = supervisor.sockets[connection_id_for(GOOD_TOKENS[2])].listener
        await wait_for(lambda: only.state.status == "connected")
    finally:
        await supervisor.shutdown()
