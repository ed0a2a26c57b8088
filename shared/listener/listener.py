"""Holds the Mews WebSocket: cookie authentication, every frame stored in the inbox before
anything else, reconnects with capped jittered backoff, and a catch-up poll over the gap after
every reconnect (Mews has no replay: events sent while we were away are lost otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import websockets
from pydantic import SecretStr

from shared.db.store import Store
from shared.intake.store import store_websocket_frame
from shared.listener.backoff import Backoff
from shared.logs import get_logger

log = get_logger(__name__)
CatchUp = Callable[[], Awaitable[None]]


@dataclass
class ListenerState:
    """What the health endpoint reports."""

    connected: bool = False
    connects: int = 0
    frames: int = 0
    catch_ups: int = 0
    last_error: str | None = None
    last_frame_at: float | None = None
    disconnected_since: float | None = field(default_factory=time.monotonic)

    def healthy(self, max_disconnected_seconds: float) -> bool:
        if self.connected or self.disconnected_since is None:
            return True
        return time.monotonic() - self.disconnected_since < max_disconnected_seconds

    def snapshot(self) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "connects": self.connects,
            "frames": self.frames,
            "catch_ups": self.catch_ups,
            "last_error": self.last_error,
        }


class Listener:
    def __init__(
        self,
        store: Store,
        *,
        websocket_url: str,
        client_token: SecretStr,
        access_token: SecretStr,
        catch_up: CatchUp,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._url = websocket_url.rstrip("/")
        if not self._url.endswith("/ws/connector"):
            self._url += "/ws/connector"
        self._client_token = client_token
        self._access_token = access_token
        self._catch_up = catch_up
        self._backoff = backoff or Backoff()
        self._rng = rng or random.Random()  # noqa: S311 - jitter
        self.state = ListenerState()

    def _cookie(self) -> str:
        # no spaces around '=' (Mews: spaces make the connection fail)
        return (
            f"ClientToken={self._client_token.get_secret_value()};"
            f"AccessToken={self._access_token.get_secret_value()}"
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set: connect, catch up, store frames; on any drop, back off."""
        first = True
        while not stop.is_set():
            try:
                async with websockets.connect(
                    self._url,
                    additional_headers={"Cookie": self._cookie()},
                    open_timeout=15,
                    ping_interval=20,
                ) as socket:
                    self.state.connected = True
                    self.state.connects += 1
                    self.state.disconnected_since = None
                    self._backoff.reset()
                    log.info("websocket connected", connects=self.state.connects)
                    if not first:
                        await self._run_catch_up()
                    first = False
                    await self._receive(socket, stop)
            except (OSError, websockets.exceptions.WebSocketException, TimeoutError) as exc:
                self.state.last_error = type(exc).__name__
                log.warning("websocket dropped", error=type(exc).__name__)
            finally:
                if self.state.connected:
                    self.state.connected = False
                    self.state.disconnected_since = time.monotonic()
            if first:
                first = False  # a failed first connect still needs a catch-up later
            if stop.is_set():
                break
            delay = self._backoff.next_delay(self._rng)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
        log.info("listener stopped", **self.state.snapshot())

    async def _receive(self, socket: Any, stop: asyncio.Event) -> None:
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while True:
                receiving = asyncio.ensure_future(socket.recv())
                done, _ = await asyncio.wait(
                    {receiving, stopping}, return_when=asyncio.FIRST_COMPLETED
                )
                if stopping in done:
                    receiving.cancel()
                    await socket.close()
                    return
                frame = receiving.result()
                text = frame if isinstance(frame, str) else frame.decode("utf-8", errors="replace")
                await store_websocket_frame(self._store, text)
                self.state.frames += 1
                self.state.last_frame_at = time.monotonic()
        finally:
            stopping.cancel()

    async def _run_catch_up(self) -> None:
        try:
            await self._catch_up()
            self.state.catch_ups += 1
        except Exception as exc:
            self.state.last_error = f"catch-up: {type(exc).__name__}"
            log.warning("catch-up failed; the scheduled poll will cover the gap", error=str(exc))
