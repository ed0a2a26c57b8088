"""Holds one Mews WebSocket (one AccessToken): cookie authentication, every frame stored in the
inbox before anything else (with the connection's integration id: WebSocket events name no
enterprise), reconnects with capped jittered backoff, and a catch-up poll over the gap after
every reconnect (Mews has no replay: events sent while we were away are lost otherwise).

An upgrade refused with 401 or 403 marks the socket ``unauthorized`` at once; it is retried
with the ordinary backoff for ``unauthorized_grace_seconds`` (a server briefly refusing
everyone looks the same on the wire), then only rarely, with ``refused_backoff`` (by default
:func:`unauthorized_backoff`: minutes, then up to an hour). The socket never marks the token
itself: REST calls are the authority on that (an integration may be refused WebSockets and still
be allowed REST), and the supervisor stops the socket once the registry drops the connection, or
restarts it with a new token.

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
from typing import Any

import websockets
from pydantic import SecretStr

from shared.db.store import Store, StoreError
from shared.intake.store import store_websocket_frame
from shared.listener.backoff import Backoff
from shared.listener.state import ListenerState
from shared.logs import get_logger

log = get_logger(__name__)
CatchUp = Callable[[], Awaitable[None]]
REFUSED = (401, 403)  # the upgrade's answer to a token Mews does not accept


def unauthorized_backoff() -> Backoff:
    """Retries of a refused token: 5 to 10 minutes at first, then 30 to 60."""
    return Backoff(base=600.0, cap=3600.0, floor=0.5)


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
        integration_id: str | None = None,
        label: str | None = None,
        refused_backoff: Backoff | None = None,
        unauthorized_grace_seconds: float = 60.0,
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
        self._integration_id = integration_id
        self._refused_backoff = refused_backoff or unauthorized_backoff()
        self._grace = unauthorized_grace_seconds
        self._log = log.bind(connection=label) if label else log
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
                self._log.warning(
                    "frames not stored at shutdown; the next catch-up covers them",
                    frames=self.state.buffered,
                )
        self._log.info("listener stopped", **self.state.snapshot())

    async def _connect_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if not await self._room_in_buffer(stop):
                break
            await self._session(stop)
            if stop.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._next_delay())

    async def _session(self, stop: asyncio.Event) -> None:
        """One connection: open, catch up, receive until dropped or stopped."""
        try:
            async with websockets.connect(
                self._url,
                additional_headers={"Cookie": self._cookie()},
                open_timeout=15,
                ping_interval=20,
            ) as socket:
                self._opened()
                # every connect, the first one of a restarted process too: what Mews sent
                # while nobody listened is read back from where the polls stand
                await self._run_catch_up()
                await self._receive(socket, stop)
        except websockets.exceptions.InvalidStatus as exc:
            self._refused(exc.response.status_code)
        except (OSError, websockets.exceptions.WebSocketException, TimeoutError) as exc:
            self.state.last_error = type(exc).__name__
            self._log.warning("websocket dropped", error=type(exc).__name__)
        finally:
            if self.state.connected:
                self.state.connected = False
                self.state.disconnected_since = time.monotonic()

    def _opened(self) -> None:
        self.state.connected = True
        self.state.connects += 1
        self.state.disconnected_since = None
        self.state.unauthorized_since = None
        self._backoff.reset()
        self._refused_backoff.reset()
        self._log.info("websocket connected", connects=self.state.connects)

    def _refused(self, status: int) -> None:
        self.state.last_error = f"upgrade refused: HTTP {status}"
        if status not in REFUSED:
            self._log.warning("websocket refused", status=status)
            return
        self.state.refusals += 1
        if self.state.unauthorized_since is None:
            self.state.unauthorized_since = time.monotonic()
        self._log.warning("websocket refused the token", status=status)

    def _next_delay(self) -> float:
        """The ordinary backoff, or the long one once the token has been refused for longer
        than the grace period."""
        since = self.state.unauthorized_since
        if since is not None and time.monotonic() - since >= self._grace:
            return self._refused_backoff.next_delay(self._rng)
        return self._backoff.next_delay(self._rng)

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
                    self._log.warning(
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
                await store_websocket_frame(self._store, frame, integration_id=self._integration_id)
            except StoreError as exc:
                self.state.store_ok = False
                self.state.store_errors += 1
                self.state.last_error = f"store: {exc.code or type(exc).__name__}"
                delay = self._store_backoff.next_delay(self._rng)
                self._log.warning(
                    "frame not stored, retrying",
                    error=str(exc),
                    retry_in=round(delay, 2),
                    buffered=self._buffer.qsize(),
                )
                await asyncio.sleep(delay)
                continue
            if not self.state.store_ok:
                self._log.info("database back; storing frames again", buffered=self._buffer.qsize())
            self.state.store_ok = True
            self._store_backoff.reset()
            self.state.stored += 1
            return

    async def _run_catch_up(self) -> None:
        try:
            await self._catch_up()
            self.state.catch_ups += 1
        except Exception as exc:
            self.state.catch_up_failures += 1
            self.state.last_error = f"catch-up: {type(exc).__name__}"
            self._log.warning(
                "catch-up failed; the scheduled poll will cover the gap", error=str(exc)
            )
