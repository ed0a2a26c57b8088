"""The listener against the simulator's WebSocket and a real database."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from pydantic import SecretStr

from shared.db.store import Store
from shared.listener.backoff import Backoff
from shared.listener.listener import Listener
from shared.listener.service import health_app
from shared.mews.client import MewsClient
from shared.mews.ratelimit import UnlimitedRateLimiter
from shared.settings import load_settings
from shared.simulator.running import Simulator, running_simulator
from shared.simulator.server import SimulatorConfig
from shared.sync.engine import SyncEngine
from tests.support.fixtures import load

pytestmark = pytest.mark.anyio
TOKENS = load("customers_getAll_request")


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    with running_simulator(SimulatorConfig(customers=100, rate_limit=None)) as sim:
        yield sim


async def wait_for(predicate: Any, limit: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def inbox(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute("select source, body from public.event_inbox order by id").fetchall()


def reservation_states(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        return {
            str(i): s for i, s in conn.execute("select mews_id, state from public.reservations")
        }


async def test_frames_are_stored_and_a_drop_is_caught_up(
    simulator: Simulator, store: Store, database_url: str
) -> None:
    settings = load_settings(mews_platform_url=simulator.url)
    async with httpx.AsyncClient() as http:
        engine = SyncEngine(
            store,
            MewsClient.from_settings(settings, http, UnlimitedRateLimiter()),
            lag=__import__("datetime").timedelta(0),
        )
        await engine.backfill("reservations")

        async def catch_up() -> None:
            engine.forget_scope()
            await engine.poll("reservations")

        listener = Listener(
            store,
            websocket_url=simulator.ws_url.removesuffix("/ws/connector"),
            client_token=SecretStr(TOKENS["ClientToken"]),
            access_token=SecretStr(TOKENS["AccessToken"]),
            catch_up=catch_up,
            backoff=Backoff(base=0.2, cap=0.5),
            rng=random.Random(1),
        )
        stop = asyncio.Event()
        task = asyncio.create_task(listener.run(stop))
        await wait_for(lambda: listener.state.connected)
        changed = await asyncio.to_thread(
            simulator.mutate, reservations_updated=2, resources_updated=1
        )
        await wait_for(lambda: listener.state.stored >= 1)
        [(source, body)] = inbox(database_url)
        assert source == "websocket"
        assert {e["Id"] for e in body["Events"]} == set(
            changed["reservations"] + changed["resources"]
        )

        # dropped, and refused for a while: changes made meanwhile reach no socket
        await asyncio.to_thread(simulator.set_faults, drop_websockets=True, refuse_seconds=3)
        await wait_for(lambda: not listener.state.connected)
        gap = await asyncio.to_thread(simulator.mutate, reservations_updated=3)
        await wait_for(lambda: listener.state.catch_ups == 2, limit=15)  # at each connect
        states = reservation_states(database_url)
        for reservation_id in gap["reservations"]:
            assert states[reservation_id] == simulator.data.reservations[reservation_id]["State"]
        assert listener.state.connects == 2

        stop.set()
        await asyncio.wait_for(task, 5)
    assert not listener.state.connected


async def test_health_reports_connection_state() -> None:
    listener = Listener(
        None,
        websocket_url="ws://127.0.0.1:1",
        client_token=SecretStr("a"),
        access_token=SecretStr("b"),  # type: ignore[arg-type]
        catch_up=lambda: asyncio.sleep(0),
    )
    transport = httpx.ASGITransport(app=health_app(listener, max_disconnected_seconds=60))
    async with httpx.AsyncClient(transport=transport, base_url="http://h") as client:
        answer = await client.get("/healthz")
        assert answer.status_code == 200
        listener.state.disconnected_since = 0.0  # disconnected since forever
        assert (await client.get("/healthz")).status_code == 503


def test_backoff_is_capped_and_jittered() -> None:
    backoff = Backoff(base=1, cap=8)
    rng = random.Random(3)
    delays = [backoff.next_delay(rng) for _ in range(10)]
    assert all(0 <= d <= 8 for d in delays)
    assert len(set(delays)) == 10
    backoff.reset()
    assert backoff.next_delay(rng) <= 1


def rename_inbox_add(url: str, to: str) -> None:
    """A real failure of the database API: the function the listener stores frames with is
    gone (renamed), then back."""
    source, target = ("inbox_add", to) if to != "inbox_add" else ("inbox_add_away", "inbox_add")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL(
                "alter function public.{}(text, text, uuid, jsonb, text) rename to {}"
            ).format(psycopg.sql.Identifier(source), psycopg.sql.Identifier(target))
        )


async def test_the_listener_rides_out_a_database_outage(
    simulator: Simulator, store: Store, database_url: str
) -> None:
    """Frames received while storing fails wait in the buffer, health says degraded, and every
    one is stored, in order, once the database answers again."""
    listener = Listener(
        store,
        websocket_url=simulator.ws_url.removesuffix("/ws/connector"),
        client_token=SecretStr(TOKENS["ClientToken"]),
        access_token=SecretStr(TOKENS["AccessToken"]),
        catch_up=lambda: asyncio.sleep(0),
        backoff=Backoff(base=0.2, cap=0.5),
        store_backoff=Backoff(base=0.05, cap=0.2),
        rng=random.Random(2),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(listener.run(stop))
    await wait_for(lambda: listener.state.connected)
    await asyncio.to_thread(rename_inbox_add, database_url, "inbox_add_away")
    changed = []
    for _ in range(3):
        changed.append(await asyncio.to_thread(simulator.mutate, reservations_updated=1))
    await wait_for(lambda: listener.state.frames >= 3 and listener.state.store_errors >= 1)
    assert listener.state.snapshot()["status"] == "degraded"
    assert listener.state.stored == 0
    transport = httpx.ASGITransport(app=health_app(listener))
    async with httpx.AsyncClient(transport=transport, base_url="http://h") as client:
        health = await client.get("/healthz")
    assert (health.status_code, health.json()["status"]) == (200, "degraded")

    await asyncio.to_thread(rename_inbox_add, database_url, "inbox_add")
    await wait_for(lambda: listener.state.stored == 3, limit=15)
    assert listener.state.snapshot()["status"] == "ok"
    stored = [body["Events"][0]["Id"] for _, body in inbox(database_url)]
    assert stored == [c["reservations"][0] for c in changed]
    stop.set()
    await asyncio.wait_for(task, 15)
