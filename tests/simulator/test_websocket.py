"""The simulator's WebSocket: cookie authentication, documented frames, dropped connections."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from shared.simulator.running import Simulator
from tests.support.fixtures import load

pytestmark = pytest.mark.anyio
TOKENS = load("customers_getAll_request")
COOKIE = f"ClientToken={TOKENS['ClientToken']};AccessToken={TOKENS['AccessToken']}"


async def test_events_arrive_in_the_documented_frame(simulator: Simulator) -> None:
    async with websockets.connect(
        simulator.ws_url, additional_headers={"Cookie": COOKIE}
    ) as socket:
        await asyncio.to_thread(simulator.mutate, reservations_updated=1, resources_updated=1)
        frame = json.loads(await asyncio.wait_for(socket.recv(), 5))
    documented = {e["Type"]: set(e) for e in load("websocket_message")["Events"]}
    types = {e["Type"] for e in frame["Events"]}
    assert types == {"Reservation", "Resource"}
    for event in frame["Events"]:
        assert set(event) == documented[event["Type"]]


async def test_bad_cookies_are_refused(simulator: Simulator) -> None:
    with pytest.raises(websockets.exceptions.InvalidStatus):
        async with websockets.connect(
            simulator.ws_url, additional_headers={"Cookie": "ClientToken=x;AccessToken=y"}
        ) as socket:
            await socket.recv()


async def test_dropping_closes_every_socket_and_refuses_for_a_while(simulator: Simulator) -> None:
    async with websockets.connect(
        simulator.ws_url, additional_headers={"Cookie": COOKIE}
    ) as socket:
        await asyncio.to_thread(simulator.set_faults, drop_websockets=True, refuse_seconds=30)
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            await asyncio.wait_for(socket.recv(), 5)
    with pytest.raises(websockets.exceptions.InvalidStatus):
        async with websockets.connect(
            simulator.ws_url, additional_headers={"Cookie": COOKIE}
        ) as again:
            await again.recv()
    await asyncio.to_thread(simulator.set_faults, drop_websockets=True, refuse_seconds=0)
