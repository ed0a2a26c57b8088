"""The listener as a service: one WebSocket per active connection (a :class:`Supervisor`), a
health endpoint on $PORT showing each, and a clean SIGTERM (every socket closed, buffered frames
stored within the flush time or left for the next catch-up)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
from collections.abc import Iterator

import uvicorn

from shared.connections.model import Connection
from shared.connections.registry import active_connections
from shared.db.connect import open_store
from shared.db.store import Store, StoreError
from shared.listener.backoff import Backoff
from shared.listener.catch_up import catch_up
from shared.listener.health import health_app
from shared.listener.listener import CatchUp, Listener
from shared.listener.supervisor import ConnectionSource, ListenerFactory, Supervisor
from shared.listener.worker import Worker, listen_url
from shared.logs import get_logger
from shared.settings import Settings

log = get_logger(__name__)


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: SIGTERM stops the listener, which stops this."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _open_store_patiently(settings: Settings, stop: asyncio.Event) -> Store | None:
    """The store, retried with backoff while the database is unreachable (None if stopped)."""
    backoff = Backoff(base=1.0, cap=30.0)
    rng = random.Random()  # noqa: S311 - jitter
    while not stop.is_set():
        try:
            return await open_store(settings)
        except StoreError as exc:
            delay = backoff.next_delay(rng)
            log.warning(
                "database unavailable at start; retrying", error=str(exc), retry_in=round(delay, 1)
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
    return None


def listener_factory(settings: Settings, store: Store) -> ListenerFactory:
    """Listeners on the configured WebSocket address, one per connection's token."""

    def new_listener(connection: Connection, catching_up: CatchUp) -> Listener:
        return Listener(
            store,
            websocket_url=settings.mews_websocket_url,
            client_token=settings.mews_client_token,
            access_token=connection.access_token,
            integration_id=connection.id,
            label=connection.label(),
            catch_up=catching_up,
        )

    return new_listener


def supervisor_for(
    settings: Settings,
    store: Store,
    *,
    source: ConnectionSource | None = None,
    refresh_seconds: float = 60.0,
) -> Supervisor:
    """The supervisor of the service: the registry's active connections (or ``source``)."""

    async def active() -> list[Connection]:
        return await active_connections(store, settings)

    async def catching_up(connection: Connection) -> None:
        await catch_up(settings, store, connection)

    return Supervisor(
        source or active,
        listener_factory(settings, store),
        catching_up,
        refresh_seconds=refresh_seconds,
    )


async def serve(
    settings: Settings,
    *,
    port: int,
    stop: asyncio.Event | None = None,
    refresh_seconds: float = 60.0,
    max_disconnected_seconds: float = 300.0,
    source: ConnectionSource | None = None,
    realtime: bool = True,
) -> None:
    """The sockets, the health endpoint and (``realtime``) the real-time worker
    (:mod:`shared.listener.worker`), until SIGTERM."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        store = await _open_store_patiently(settings, stop)
        if store is None:
            return
        try:
            supervisor = supervisor_for(
                settings, store, source=source, refresh_seconds=refresh_seconds
            )
            worker = worker_for(settings, store, source=source) if realtime else None
            await _serve_with_health(supervisor, stop, port, max_disconnected_seconds, worker)
        finally:
            await store.aclose()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def worker_for(
    settings: Settings, store: Store, *, source: ConnectionSource | None = None
) -> Worker:
    """The real-time worker of the service: the registry's active connections (or
    ``source``), LISTENing on the direct database URL when there is one."""

    async def active() -> list[Connection]:
        return await active_connections(store, settings)

    return Worker(settings, store, source or active, listen=listen_url(settings))


async def _serve_with_health(
    supervisor: Supervisor,
    stop: asyncio.Event,
    port: int,
    max_disconnected_seconds: float,
    worker: Worker | None = None,
) -> None:
    server = _QuietServer(
        uvicorn.Config(
            health_app(
                supervisor,
                max_disconnected_seconds,
                worker.state.snapshot if worker is not None else None,
            ),
            host="0.0.0.0",  # noqa: S104 - Cloud Run routes to the container
            port=port,
            log_level="warning",
            access_log=False,
        )
    )
    health = asyncio.create_task(server.serve())
    working = asyncio.create_task(worker.run(stop)) if worker is not None else None
    try:
        await supervisor.run(stop)
    finally:
        if working is not None:  # the drain in hand finishes (bounded)
            stop.set()
            await asyncio.gather(working, return_exceptions=True)
        server.should_exit = True
        await health
    log.info("listener stopped")
