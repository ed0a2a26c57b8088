"""One listener (one token) against the simulator's WebSocket and a real database."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from typing import Any

import httpx
import psycopg
import pytest
from pydantic import SecretStr

from shared.db.store import Store
from shared.listener.backoff import Backoff
from shared.listener.listener import Listener
from shared.mews.client import MewsClient
from shared.mews.ratelimit import UnlimitedRateLimiter
from shared.settings import load_settings
from shared.simulator.running import Simulator
from shared.sync.engine import SyncEngine
from shared.sync.entities import SPECS
from tests.listener.support import (
    BAD_TOKEN,
    CLIENT_TOKEN,
    GOOD_TOKENS,
    event_ids,
    inbox,
    wait_for,
)

pytestmark = pytest.mark.anyio
INTEGRATION = "00000000-0000-0000-0000-0000000000a1"


def reservation_states(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        return {
            str(i): s for i, s in conn.execute("select mews_id, state from public.reservations")
        }


def listener(store: Store, websocket_url: str, token: str, **options: Any) -> Listener:
    defaults: dict[str, Any] = {
        "catch_up": lambda: asyncio.sleep(0),
        "backoff": Backoff(base=0.2, cap=0.5),
        "store_backoff": Backoff(base=0.05, cap=0.2),
        "rng": random.Random(2),
        "integration_id": INTEGRATION,
    }
    return Listener(
        store,
        websocket_url=websocket_url,
        client_token=SecretStr(CLIENT_TOKEN),
        access_token=SecretStr(token),
        **(defaults | options),
    )


async def test_frames_are_stored_with_the_connection_and_a_drop_is_caught_up(
    simulator: Simulator, store: Store, database_url: str, websocket_url: str
) -> None:
    settings = load_settings(mews_platform_url=simulator.url, database_url=database_url)
    async with httpx.AsyncClient() as http:
        engine = SyncEngine(
            store,
            MewsClient.from_settings(settings, http, UnlimitedRateLimiter()),
            lag=timedelta(0),
        )
        await engine.backfill(SPECS["reservations"])

        async def catch_up() -> None:
            engine.forget_scope()
            await engine.poll(SPECS["reservations"])

        one = listener(store, websocket_url, GOOD_TOKENS[0], catch_up=catch_up)
        stop = asyncio.Event()
        task = asyncio.create_task(one.run(stop))
        await wait_for(lambda: one.state.connected)
        changed = await asyncio.to_thread(
            simulator.mutate, reservations_updated=2, resources_updated=1
        )
        await wait_for(lambda: one.state.stored >= 1)
        [(integration_id, body)] = inbox(database_url)
        assert integration_id == INTEGRATION
        assert event_ids(body) == set(changed["reservations"] + changed["resources"])

        # dropped, and refused for a while: changes made meanwhile reach no socket
        await asyncio.to_thread(simulator.set_faults, drop_websockets=True, refuse_seconds=3)
        await wait_for(lambda: not one.state.connected)
        gap = await asyncio.to_thread(simulator.mutate, reservations_updated=3)
        await wait_for(lambda: one.state.catch_ups == 2)  # at each connect
        states = reservation_states(database_url)
        for reservation_id in gap["reservations"]:
            assert states[reservation_id] == simulator.data.reservations[reservation_id]["State"]
        assert one.state.connects == 2
        assert one.state.status == "connected"  # refused for a while, not unauthorized now

        stop.set()
        await asyncio.wait_for(task, 15)
    assert not one.state.connected


async def test_a_refused_token_is_unauthorized_and_retried_rarely_after_the_grace(
    store: Store, websocket_url: str
) -> None:
    """Within the grace period a refusal is retried with the ordinary backoff (a server briefly
    refusing everyone looks the same); after it, only with the long one."""
    ordinary, rare = Backoff(base=0.05, cap=0.1), Backoff(base=600, cap=600, floor=1.0)
    stop = asyncio.Event()

    patient = listener(store, websocket_url, BAD_TOKEN, backoff=ordinary, refused_backoff=rare)
    task = asyncio.create_task(patient.run(stop))
    await wait_for(lambda: patient.state.refusals >= 3)
    assert (patient.state.status, rare.attempt) == ("unauthorized", 0)
    assert patient.state.last_error == "upgrade refused: HTTP 403"

    ordinary, rare = Backoff(base=0.05, cap=0.1), Backoff(base=300, cap=600, floor=1.0)
    strict = listener(
        store,
        websocket_url,
        BAD_TOKEN,
        backoff=ordinary,
        refused_backoff=rare,
        unauthorized_grace_seconds=0,
    )
    strict_task = asyncio.create_task(strict.run(stop))
    await wait_for(lambda: rare.attempt == 1)  # now waiting 300 s
    assert (strict.state.refusals, ordinary.attempt, strict.state.connects) == (1, 0, 0)
    assert strict.state.healthy(max_disconnected_seconds=0)  # never 503 for a refused token

    stop.set()
    await asyncio.wait_for(asyncio.gather(task, strict_task), 15)


def rename_inbox_add(url: str, to: str) -> None:
    """A real failure of the database API: the function the listener stores frames with is
    gone (renamed), then back (named without its arguments: there is one of each name)."""
    source, target = ("inbox_add", to) if to != "inbox_add" else ("inbox_add_away", "inbox_add")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("alter function public.{} rename to {}").format(
                psycopg.sql.Identifier(source), psycopg.sql.Identifier(target)
            )
        )


async def test_the_listener_rides_out_a_database_outage(
    simulator: Simulator, store: Store, database_url: str, websocket_url: str
) -> None:
    """Frames received while storing fails wait in the buffer, health says degraded, and every
    one is stored, in order, once the database answers again."""
    one = listener(store, websocket_url, GOOD_TOKENS[0])
    stop = asyncio.Event()
    task = asyncio.create_task(one.run(stop))
    await wait_for(lambda: one.state.connected)
    await asyncio.to_thread(rename_inbox_add, database_url, "inbox_add_away")
    changed = []
    for _ in range(3):
        changed.append(await asyncio.to_thread(simulator.mutate, reservations_updated=1))
    await wait_for(lambda: one.state.frames >= 3 and one.state.store_errors >= 1)
    assert one.state.snapshot()["status"] == "degraded"
    assert one.state.stored == 0
    assert one.state.healthy(max_disconnected_seconds=300)

    await asyncio.to_thread(rename_inbox_add, database_url, "inbox_add")
    await wait_for(lambda: one.state.stored == 3)
    assert one.state.snapshot()["status"] == "connected"
    stored = [body["Events"][0]["Id"] for _, body in inbox(database_url)]
    assert stored == [c["reservations"][0] for c in changed]
    stop.set()
    await asyncio.wait_for(task, 15)


async def test_frames_buffered_at_stop_are_stored_if_the_database_answers_within_the_flush(
    simulator: Simulator, store: Store, database_url: str, websocket_url: str
) -> None:
    """SIGTERM while the database is away: the socket closes at once, and what was received is
    still stored when the database comes back within the flush time."""
    one = listener(store, websocket_url, GOOD_TOKENS[0])
    stop = asyncio.Event()
    task = asyncio.create_task(one.run(stop, flush_seconds=60))
    await wait_for(lambda: one.state.connected)
    await asyncio.to_thread(rename_inbox_add, database_url, "inbox_add_away")
    for _ in range(2):
        await asyncio.to_thread(simulator.mutate, reservations_updated=1)
    await wait_for(lambda: one.state.frames == 2 and one.state.store_errors >= 1)

    stop.set()
    await wait_for(lambda: not one.state.connected)
    assert not task.done()  # flushing
    await asyncio.to_thread(rename_inbox_add, database_url, "inbox_add")
    await asyncio.wait_for(task, 30)
    assert (one.state.stored, one.state.buffered, len(inbox(database_url))) == (2, 0, 2)
