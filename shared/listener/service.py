"""The listener as a service: the WebSocket loop, a health endpoint on $PORT, clean SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
from collections.abc import Iterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from shared.db.connect import open_store
from shared.db.store import Store, StoreError
from shared.listener.backoff import Backoff
from shared.listener.listener import Listener
from shared.logs import get_logger
from shared.settings import Settings
from shared.sync.connect import connected_engine
from shared.sync.liveness import live_run

log = get_logger(__name__)


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: SIGTERM stops the listener, which stops this."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def health_app(listener: Listener, max_disconnected_seconds: float = 300.0) -> Starlette:
    async def health(_: Request) -> JSONResponse:
        healthy = listener.state.healthy(max_disconnected_seconds)
        return JSONResponse(listener.state.snapshot(), status_code=200 if healthy else 503)

    return Starlette(routes=[Route("/healthz", health), Route("/", health)])


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


async def serve(settings: Settings, *, port: int, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    store = await _open_store_patiently(settings, stop)
    if store is None:
        return
    async with connected_engine(settings, store) as engine:

        async def catch_up() -> None:
            engine.forget_scope()
            async with live_run(store, "listener_catch_up") as run:
                scope = await engine.scope()
                for entity in ("reservations", "resources"):
                    checkpoint = await store.call(
                        "checkpoint_get",
                        p_scope_id=scope.scope_id(entity),
                        p_entity=entity,
                        p_phase="poll",
                    )
                    if checkpoint["high_water_utc"] is None:
                        continue  # not loaded yet: the first load covers it, not a catch-up
                    await engine.poll(entity, run)

        listener = Listener(
            store,
            websocket_url=settings.mews_websocket_url,
            client_token=settings.mews_client_token,
            access_token=settings.mews_access_token,
            catch_up=catch_up,
        )
        server = _QuietServer(
            uvicorn.Config(
                health_app(listener),
                host="0.0.0.0",  # noqa: S104 - Cloud Run routes to the container
                port=port,
                log_level="warning",
                access_log=False,
            )
        )
        health = asyncio.create_task(server.serve())
        try:
            await listener.run(stop)
        finally:
            server.should_exit = True
            await health
            await store.aclose()
