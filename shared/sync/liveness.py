"""Runs that prove they are alive, and leases that give one worker each unit of work.

A :func:`live_run` is a recorded run (:func:`shared.sync.runs.recorded_run`) that first marks
the runs whose heartbeat stopped as ``abandoned`` (their process is gone: killed, lost with its
instance), then heartbeats every ``heartbeat_seconds`` while it works; the heartbeat also
extends the leases the run holds. :func:`unit` takes a lease for one unit of work, e.g. the
poll of (scope, entity): when another live run holds it, this run skips the unit and counts it
(``units_skipped``); a run that skipped everything is recorded as ``skipped``, not failed.
A lease expires on its own when its holder dies, so the next run takes the unit over.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from uuid import UUID

from shared.db.store import Store, StoreError
from shared.logs import get_logger
from shared.sync.engine import SyncEngine
from shared.sync.entities import entity as spec_of
from shared.sync.runs import Run, recorded_run

log = get_logger(__name__)

HEARTBEAT_SECONDS = 15.0
STALE_SECONDS = 90  # six missed heartbeats
LEASE_SECONDS = 120


def process_name() -> str:
    """Who runs a run: host and process id (what an operator needs to find it)."""
    return f"{socket.gethostname()}:{os.getpid()}"


@asynccontextmanager
async def live_run(
    store: Store,
    job: str,
    scope_id: UUID | None = None,
    *,
    connection_id: str | None = None,
    heartbeat_seconds: float = HEARTBEAT_SECONDS,
    stale_seconds: int = STALE_SECONDS,
) -> AsyncIterator[Run]:
    """A recorded run that reaps dead runs first and heartbeats while it works."""
    async with recorded_run(store, job, scope_id, connection_id=connection_id) as run:
        await store.call("run_heartbeat", p_id=str(run.id), p_owner=process_name())
        reaped = await store.call(
            "runs_reap", p_stale_seconds=stale_seconds, p_by=f"{job} {run.id}"
        )
        if reaped["abandoned"]:
            run.count(runs_abandoned=int(reaped["abandoned"]))
            log.warning("runs without heartbeat marked abandoned", jobs=reaped["jobs"])
        beat = asyncio.create_task(_heartbeat(store, run, heartbeat_seconds))
        try:
            yield run
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            if (
                run.status == "succeeded"
                and run.counts.get("units_skipped")
                and not (set(run.counts) - {"units_skipped", "runs_abandoned"})
            ):
                run.status = "skipped"


async def _heartbeat(store: Store, run: Run, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            await store.call("run_heartbeat", p_id=str(run.id), p_lease_seconds=LEASE_SECONDS)
        except StoreError as exc:  # the work itself will meet the outage and say so
            log.warning("heartbeat failed", run_id=str(run.id), error=str(exc))


@asynccontextmanager
async def unit(store: Store, run: Run, name: str) -> AsyncIterator[bool]:
    """Hold the lease ``name`` for the block; yields False (and counts a skip) when another
    live run holds it."""
    taken = await store.call(
        "lease_acquire", p_name=name, p_holder=str(run.id), p_seconds=LEASE_SECONDS
    )
    if not taken["acquired"]:
        run.count(units_skipped=1)
        log.info("unit held by another run; skipped", unit=name, holder=taken["holder"])
        yield False
        return
    try:
        yield True
    finally:
        await store.call("lease_release", p_name=name, p_holder=str(run.id))


async def engine_units(
    engine: SyncEngine,
    run: Run,
    kind: str,
    entities: Iterable[str],
    action: Callable[[str, Run], Awaitable[object]],
    *,
    side_by_side: bool = False,
) -> None:
    """``action(entity, run)`` for each entity whose lease ``kind:scope:entity`` this run gets;
    the others are skipped (another worker is on them). A unit this run has done already (a
    chain's customers, for the second enterprise of a portfolio) is not done again.

    ``side_by_side`` runs the entities at once (a first load is then bound by Mews, not by
    waiting for one another: the client's rate limiter keeps them all inside the token's
    budget), except that an entity swept by the ids of another's records starts when that one
    has ended. A failure lets the others finish (their checkpoints land), then is raised."""
    scope = await engine.scope()
    chosen = list(entities)

    async def one(entity: str) -> None:
        name = f"{kind}:{scope.scope_id(entity)}:{entity}"
        if name in run.units_done:
            return
        async with unit(engine.store, run, name) as mine:
            if mine:
                await action(entity, run)
                run.units_done.add(name)

    if not side_by_side:
        for entity in chosen:
            await one(entity)
        return
    tasks: dict[str, asyncio.Task[None]] = {}

    async def after_owner(entity: str) -> None:
        sweep = spec_of(entity).sweep
        owner = tasks.get(sweep.owner) if sweep is not None else None
        if owner is not None:
            await asyncio.wait([owner])  # its failure is raised by gather below, not here
        await one(entity)

    for entity in chosen:
        tasks[entity] = asyncio.create_task(after_owner(entity))
    results = await asyncio.gather(*tasks.values(), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
