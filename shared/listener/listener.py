"""Holds the Mews WebSocket: cookie authentication, every frame stored in the inbox before
anything else, reconnects with capped jittered backoff, and a catch-up poll over the gap after
every reconnect (Mews has no replay: events sent while we were away are lost otherwise).

Frames go through a bounded buffer to a writer that rides out a database outage: it retries
with its own capped backoff while the health endpoint says ``degraded``. Should the buffer fill
up, the listener closes the socket rather than lose frames silently; the reconnect's catch-up
poll then covers what it did not receive.
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

from shared.db.store import Store, StoreError
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
    # the database side: frames received but not yet stored, and whether storing works
    buffered: int = 0
    stored: int = 0
    store_ok: bool = True
    store_errors: int = 0
    overflows: int = 0

    def healthy(self, max_disconnected_seconds: float) -> bool:
        if self.connected or self.disconnected_since is None:
            return True
        return time.monotonic() - self.disconnected_since < max_disconnected_seconds

    @property
    def status(self) -> str:
        if not self.connected:
            return "disconnected"
        return "ok" if self.store_ok else "degraded"

    def snapshot(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "connected": self.connected,
            "connects": self.connects,
            "frames": self.frames,
            "stored": self.stored,
            "buffered": self.buffered,
            "store_ok": self.store_ok,
            "store_errors": self.store_errors,
            "overflows": self.overflows,
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
        buffer_size: int = 10_000,
        store_backoff: Backoff | None = None,
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
        self._buffer: asyncio.Queue[str] = asyncio.Queue(maxsize=buffer_size)
        self._store_backoff = store_backoff or Backoff(base=0.5, cap=30.0)
        self.state = ListenerState()

    def _cookie(self) -> str:
        # no spaces around '=' (Mews: spaces make the connection fail)
        return (
            f"ClientToken={self._client_token.get_secret_value()};"
            f"AccessToken={self._access_token.get_secret_value()}"
        )

    async def run(self, stop: asyncio.Event, *, flush_seconds: float = 10.0) -> None:
        """Until ``stop`` is set: connect, catch up, store frames; on any drop, back off."""
        writer = asyncio.create_task(self._write_frames())
        try:
            await self._connect_loop(stop)
        finally:
            # what was received is stored if the database lets us within the flush time
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._buffer.join(), timeout=flush_seconds)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            if self.state.buffered:
                log.warning(
                    "frames not stored at shutdown; the next catch-up covers them",
                    frames=self.state.buffered,
                )
        log.info("listener stopped", **self.state.snapshot())

    async def _connect_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if not await self._room_in_buffer(stop):
                break
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
                    # every connect, the first one of a restarted process too: what Mews sent
                    # while nobody listened is read back from where the polls stand
                    await self._run_catch_up()
                    await self._receive(socket, stop)
            except (OSError, websockets.exceptions.WebSocketException, TimeoutError) as exc:
                self.state.last_error = type(exc).__name__
                log.warning("websocket dropped", error=type(exc).__name__)
            finally:
                if self.state.connected:
                    self.state.connected = False
                    self.state.disconnected_since = time.monotonic()
            if stop.is_set():
                break
            delay = self._backoff.next_delay(self._rng)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)

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
                self.state.frames += 1
                self.state.last_frame_at = time.monotonic()
                try:
                    self._buffer.put_nowait(text)
                except asyncio.QueueFull:
                    # the database has been away too long: stop receiving rather than drop
                    # frames unnoticed; the reconnect's catch-up reads what we miss
                    self.state.overflows += 1
                    self.state.last_error = "buffer full: database unavailable"
                    log.warning(
                        "frame buffer full; closing the socket until the database is back",
                        buffered=self.state.buffered,
                    )
                    await socket.close()
                    return
                self.state.buffered = self._buffer.qsize()
        finally:
            stopping.cancel()

    async def _room_in_buffer(self, stop: asyncio.Event) -> bool:
        """Wait (while the database is away) until the buffer is at most half full; False when
        stopped meanwhile."""
        while self._buffer.qsize() > self._buffer.maxsize // 2:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.5)
            if stop.is_set():
                return False
        return True

    async def _write_frames(self) -> None:
        """Store buffered frames in order; a database error is retried with backoff."""
        while True:
            frame = await self._buffer.get()
            try:
                await self._store_one(frame)
            finally:
                self._buffer.task_done()
                self.state.buffered = self._buffer.qsize()

    async def _store_one(self, frame: str) -> None:
        while True:
            try:
                await store_websocket_frame(self._store, frame)
            except StoreError as exc:
                self.state.store_ok = False
                self.state.store_errors += 1
                self.state.last_error = f"store: {exc.code or type(exc).__name__}"
                delay = self._store_backoff.next_delay(self._rng)
                log.warning(
                    "frame not stored, retrying",
                    error=str(exc),
                    retry_in=round(delay, 2),
                    buffered=self._buffer.qsize(),
                )
                await asyncio.sleep(delay)
                continue
            if not self.state.store_ok:
                log.info("database back; storing frames again", buffered=self._buffer.qsize())
            self.state.store_ok = True
            self._store_backoff.reset()
            self.state.stored += 1
            return

    async def _run_catch_up(self) -> None:
        try:
            await self._catch_up()
            self.state.catch_ups += 1
        except Exception as exc:
            self.state.last_error = f"catch-up: {type(exc).__name__}"
            log.warning("catch-up failed; the scheduled poll will cover the gap", error=str(exc))
