"""The catch-up after a (re)connect: Mews has no replay, so what a connection's socket missed is
read back by polling from where its polls stand (docs/MEWS.md#websocket).

One recorded run (``listener_catch_up``) per catch-up of a connection; inside it, each
enterprise the token covers (a portfolio token covers several; none known yet: the token's own
enterprise) polls the entities Mews sends over the WebSocket (their specs say so: reservations
and resources), with the connection's token and request budget.
An entity not loaded yet is left to the first load. One enterprise failing does not stop the
others; the catch-up then fails as a whole, naming them (the scheduled poll covers the gap).
"""

from __future__ import annotations

from typing import Any

from shared.connections.model import Connection
from shared.db.store import Store
from shared.logs import get_logger
from shared.settings import Settings
from shared.sync.connect import connected_engine
from shared.sync.engine import SyncEngine
from shared.sync.entities import SPECS
from shared.sync.liveness import live_run
from shared.sync.runs import Run

log = get_logger(__name__)

ENTITIES = tuple(s for s in SPECS.values() if s.on_websocket)  # what the WebSocket sends


class CatchUpError(Exception):
    """Some enterprises of a connection were not caught up."""


async def catch_up(
    settings: Settings, store: Store, connection: Connection, **engine_options: Any
) -> None:
    """Catch up every enterprise of ``connection`` (``engine_options`` go to each engine)."""

    async def enterprise(enterprise_id: str | None, run: Run) -> None:
        async with connected_engine(
            settings,
            store,
            access_token=connection.access_token,
            enterprise_id=enterprise_id,
            **engine_options,
        ) as engine:
            await _poll_loaded(store, engine, run)

    failed: list[str] = []
    async with live_run(store, "listener_catch_up", connection_id=connection.id) as run:
        for enterprise_id in connection.enterprise_ids or (None,):
            try:
                await enterprise(enterprise_id, run)
            except Exception as exc:  # one enterprise's failure stays with it
                failed.append(f"{enterprise_id or 'own enterprise'}: {type(exc).__name__}")
                log.warning(
                    "catch-up of an enterprise failed",
                    connection=connection.label(),
                    enterprise_id=enterprise_id,
                    error=str(exc),
                )
        if failed:
            raise CatchUpError("; ".join(failed))


async def _poll_loaded(store: Store, engine: SyncEngine, run: Run) -> None:
    """Poll each entity already loaded for the engine's enterprise."""
    scope = await engine.scope()
    for spec in ENTITIES:
        checkpoint = await store.call(
            "checkpoint_get", p_scope_id=scope.scope_id(spec), p_entity=spec.name, p_phase="poll"
        )
        if checkpoint["high_water_utc"] is None:
            continue  # not loaded yet: the first load covers it, not a catch-up
        await engine.poll(spec, run)
