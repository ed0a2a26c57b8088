"""One process, one WebSocket per connection: the supervisor keeps a :class:`Listener` running
for every active connection and follows the registry as it changes.

Every ``refresh_seconds`` it reads the active connections and compares them with the sockets it
holds (:func:`plan`, pure): a new connection gets a socket; a connection gone (deleted,
disabled, unauthorized by the REST side) has its socket stopped; a connection whose token
changed (same id, another key) has its socket replaced; a socket whose task ended on its own
(a bug, never a network error: those are retried inside the listener) is started again. A
registry that cannot be read (the database is away) leaves the sockets as they are and is
retried sooner.

Each listener has its own stop event, buffer, writer, backoff and catch-up, so one
connection's refused token, failing catch-up or refused frames never touch the others.
Stopping a socket never blocks the refresh loop: a retiring listener flushes its buffer in the
background, and shutdown waits for every one of them (bounded by ``shutdown_seconds``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from shared.connections.model import Connection
from shared.listener.backoff import Backoff
from shared.listener.listener import CatchUp, Listener
from shared.logs import get_logger

log = get_logger(__name__)

ConnectionSource = Callable[[], Awaitable[list[Connection]]]
ListenerFactory = Callable[[Connection, CatchUp], Listener]
ConnectionCatchUp = Callable[[Connection], Awaitable[None]]


@dataclass(frozen=True)
class Plan:
    """What a refresh changes: sockets to start, to stop (by id), to replace, and connections
    whose details changed without touching the socket (a name, discovered enterprises)."""

    start: tuple[Connection, ...] = ()
    stop: tuple[str, ...] = ()
    restart: tuple[Connection, ...] = ()
    update: tuple[Connection, ...] = ()


def plan(
    running: Mapping[str, Connection], wanted: Iterable[Connection], ended: Iterable[str] = ()
) -> Plan:
    """Compare the sockets held (``running``, by connection id; ``ended``: ids whose task has
    stopped on its own) with the active connections."""
    wanted_by_id = {c.id: c for c in wanted}
    ended = set(ended)
    start, restart, update = [], [], []
    for conn_id, connection in wanted_by_id.items():
        held = running.get(conn_id)
        if held is None:
            start.append(connection)
        elif held.key != connection.key or conn_id in ended:
            restart.append(connection)
        elif held != connection:
            update.append(connection)
    stop = tuple(conn_id for conn_id in running if conn_id not in wanted_by_id)
    return Plan(tuple(start), stop, tuple(restart), tuple(update))


@dataclass
class Socket:
    """A connection and the listener holding its WebSocket."""

    connection: Connection
    listener: Listener
    stop: asyncio.Event
    task: asyncio.Task[None]
    started_at: float = field(default_factory=time.monotonic)


@dataclass
class RegistryState:
    """How reading the connections goes (for the health endpoint)."""

    refreshes: int = 0
    failures: int = 0
    last_refresh_at: float | None = None
    last_error: str | None = None


class Supervisor:
    def __init__(
        self,
        source: ConnectionSource,
        new_listener: ListenerFactory,
        catch_up: ConnectionCatchUp,
        *,
        refresh_seconds: float = 60.0,
        flush_seconds: float = 10.0,
        shutdown_seconds: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self._source = source
        self._new_listener = new_listener
        self._catch_up = catch_up
        self._refresh_seconds = refresh_seconds
        self._flush_seconds = flush_seconds
        self._shutdown_seconds = shutdown_seconds
        self._rng = rng or random.Random()  # noqa: S311 - jitter
        self._retry = Backoff(base=1.0, cap=refresh_seconds)
        self._retiring: set[asyncio.Task[None]] = set()
        self.sockets: dict[str, Socket] = {}
        self.registry = RegistryState()

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set: refresh, wait, refresh…; then stop every socket."""
        try:
            while not stop.is_set():
                delay = await self.refresh()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
        finally:
            await self.shutdown()

    async def refresh(self) -> float:
        """Read the active connections and apply the difference; the seconds until the next
        refresh (sooner after a failed read)."""
        try:
            wanted = await self._source()
        except Exception as exc:  # the database away, or a bug: the sockets keep running
            self.registry.failures += 1
            self.registry.last_error = type(exc).__name__
            delay = self._retry.next_delay(self._rng)
            log.warning("connections not read; sockets kept", error=str(exc), retry_in=delay)
            return delay
        self._retry.reset()
        self.registry.refreshes += 1
        self.registry.last_refresh_at = time.monotonic()
        self.registry.last_error = None
        self.apply(plan(self._held(), wanted, self._ended()))
        return self._refresh_seconds

    def apply(self, changes: Plan) -> None:
        for conn_id in changes.stop:
            self._retire(self.sockets.pop(conn_id), "connection no longer active")
        for connection in changes.restart:
            self._retire(self.sockets.pop(connection.id), "token changed or socket ended")
            self._start(connection)
        for connection in changes.start:
            self._start(connection)
        for connection in changes.update:
            self.sockets[connection.id].connection = connection

    async def shutdown(self) -> None:
        """Stop every socket; wait for each to close and flush (bounded), then cancel."""
        for conn_id in list(self.sockets):
            self._retire(self.sockets.pop(conn_id), "shutting down")
        if not self._retiring:
            return
        _, pending = await asyncio.wait(set(self._retiring), timeout=self._shutdown_seconds)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
            log.warning("sockets cancelled at shutdown", sockets=len(pending))

    def _held(self) -> dict[str, Connection]:
        return {conn_id: socket.connection for conn_id, socket in self.sockets.items()}

    def _ended(self) -> list[str]:
        return [conn_id for conn_id, socket in self.sockets.items() if socket.task.done()]

    def _start(self, connection: Connection) -> None:
        conn_id = connection.id

        async def catch_up() -> None:
            # the connection as the registry last described it (enterprises discovered later)
            socket = self.sockets.get(conn_id)
            await self._catch_up(socket.connection if socket else connection)

        listener = self._new_listener(connection, catch_up)
        stop = asyncio.Event()
        task = asyncio.create_task(self._guarded(connection, listener, stop))
        self.sockets[conn_id] = Socket(connection, listener, stop, task)
        log.info("socket started", connection=connection.label())

    async def _guarded(
        self, connection: Connection, listener: Listener, stop: asyncio.Event
    ) -> None:
        """The listener's run; whatever it raises stays with its connection."""
        try:
            await listener.run(stop, flush_seconds=self._flush_seconds)
        except Exception as exc:
            listener.state.last_error = f"listener ended: {type(exc).__name__}"
            log.exception(
                "listener ended; restarted at the next refresh", connection=connection.label()
            )

    def _retire(self, socket: Socket, reason: str) -> None:
        socket.stop.set()
        self._retiring.add(socket.task)
        socket.task.add_done_callback(self._retiring.discard)
        log.info("socket stopping", connection=socket.connection.label(), reason=reason)
