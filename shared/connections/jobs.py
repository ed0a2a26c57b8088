"""What each Mews job does for one connection (one :class:`ConnectionPass`): the same work the
functions and the CLI run, over every enterprise the connection covers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import partial

from shared.connections.fleet import ConnectionPass, ConnectionWork
from shared.connections.model import Connection
from shared.db.store import Store
from shared.sync.engine import Counts, SyncEngine
from shared.sync.entities import SPECS, EntitySpec
from shared.sync.events import Refresher, Route
from shared.sync.events import process_events as drain
from shared.sync.liveness import engine_units, unit
from shared.sync.push import push_changes
from shared.sync.runs import Run

EntityAction = Callable[[EntitySpec, Run], Awaitable[object]]
InboxRoute = tuple[Refresher, Route]


def _chosen(entities: Iterable[EntitySpec] | None) -> tuple[EntitySpec, ...]:
    """The entities given (their names checked where they came in), or every entity."""
    return tuple(SPECS.values()) if entities is None else tuple(entities)


def _each_entity(
    kind: str, entities: Iterable[EntitySpec] | None, action: Callable[[SyncEngine], EntityAction]
) -> ConnectionWork:
    """``action(engine)(spec, run)`` for each entity of each enterprise the connection
    covers, one worker per unit ``kind:scope:entity`` (a chain's entities once); a first load
    loads the entities side by side."""
    chosen = _chosen(entities)
    side_by_side = kind == "backfill"

    async def work(_: Store, p: ConnectionPass) -> None:
        for engine in p.engines:
            await engine_units(
                engine,
                p.run,
                kind,
                chosen,
                action(engine),
                side_by_side=side_by_side,
                liveness=p.liveness,
            )

    return work


def poll(entities: Iterable[EntitySpec] | None = None) -> ConnectionWork:
    """One incremental pass of each entity; an entity never loaded (a property just
    connected) gets its first load instead: concurrent windows, resumable, so that a pass cut
    short by the time budget is carried on by the next. Every entity without ``entities``."""
    chosen = _chosen(entities)

    async def work(_: Store, p: ConnectionPass) -> None:
        for engine in p.engines:
            fresh = [e for e in chosen if not await engine.loaded(e)]
            await engine_units(
                engine,
                p.run,
                "backfill",
                fresh,
                engine.backfill,
                side_by_side=True,
                liveness=p.liveness,
            )
            loaded = [e for e in chosen if e not in fresh]
            await engine_units(engine, p.run, "poll", loaded, engine.poll, liveness=p.liveness)

    return work


def backfill(
    entities: Iterable[EntitySpec] | None = None, *, restart: bool = False
) -> ConnectionWork:
    """The first load of each entity (resumable window by window: a pass cut short by its
    time budget is carried on by the next); ``restart`` loads again from scratch."""
    return _each_entity(
        "backfill", entities, lambda engine: partial(engine.backfill, restart=restart)
    )


def reconcile(entities: Iterable[EntitySpec] | None = None) -> ConnectionWork:
    """The full compare of each entity."""
    return _each_entity("reconcile", entities, lambda engine: engine.reconcile)


def inbox_routes(connection: Connection, engines: Sequence[SyncEngine]) -> list[InboxRoute]:
    """Which inbox events a connection's drain claims, and what refreshes them. One
    enterprise: one route takes its events and the connection's own together (a change
    announced by a webhook and the WebSocket is claimed and read once); a portfolio: each
    enterprise's events by its own engine, then the connection's own events (its WebSocket
    frames name no enterprise) across its enterprises. ``engines``: one per enterprise, in the
    order of ``connection.enterprise_ids``."""
    enterprise_ids = connection.enterprise_ids
    own: InboxRoute = (AcrossEnterprises(engines), Route(enterprise_ids, connection.id))
    if len(engines) <= 1:
        return [own]
    return [
        *(
            (engine, Route((enterprise_id,)))
            for enterprise_id, engine in zip(enterprise_ids, engines, strict=True)
        ),
        own,
    ]


async def process_events(store: Store, p: ConnectionPass) -> None:
    """The connection's inbox events, route by route (:func:`inbox_routes`)."""
    for refresher, route in inbox_routes(p.connection, p.engines):
        await drain(store, refresher, p.run, route=route)


def push(progress: Callable[[int], None] | None = None) -> ConnectionWork:
    """Staff edits of the guests of each chain the connection covers, one worker per chain."""

    async def work(store: Store, p: ConnectionPass) -> None:
        chains: set[str] = set()
        for engine in p.engines:
            chain_id = (await engine.scope()).chain_id
            if chain_id in chains:
                continue
            chains.add(chain_id)
            async with unit(store, p.run, f"push_changes:{chain_id}", p.liveness) as mine:
                if mine:
                    await push_changes(
                        store, engine, p.run, progress=progress, chain_ids=[chain_id]
                    )

    return work


class AcrossEnterprises:
    """Refresh by id in every enterprise of a connection: an event that names no enterprise
    (a WebSocket frame of a portfolio token) may belong to any of them. A chain's records are
    read once per chain."""

    def __init__(self, engines: Sequence[SyncEngine]) -> None:
        self.engines = list(engines)

    async def refresh(self, spec: EntitySpec, ids: list[str], run: Run | None = None) -> Counts:
        total = Counts()
        chains: set[str] = set()
        for engine in self.engines:
            scope = await engine.scope()
            if spec.scope == "chain":
                if scope.chain_id in chains:
                    continue
                chains.add(scope.chain_id)
            total += await engine.refresh(spec, ids, run)
        return total
