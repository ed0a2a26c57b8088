"""Runs that prove they are alive, and leases that give one worker each unit of work.

A :func:`live_run` is a recorded run (:func:`shared.sync.runs.recorded_run`) that records its
process's session lock (:mod:`shared.db.session`: on a direct connection, a lock PostgreSQL
drops the moment the process dies), first marks the runs that are over as ``abandoned`` (their
session lock is free: the process is gone; or their heartbeat stopped ``stale_seconds`` ago: it
hangs), then heartbeats every ``heartbeat_seconds`` while it works; the heartbeat also extends
the leases the run holds and takes the session lock again if its connection was lost.

:func:`unit` takes a lease for one unit of work, e.g. the poll of (scope, entity). A lease whose
holder is dead is taken over at once (the dead run is marked abandoned); one held by a live run
is, by the run's :class:`Liveness`, either skipped and counted (``units_skipped``: a scheduled
job, whose unit the holder is doing) or waited for (a command: an operator asked for the work),
and then done by this run unless the holder did it (``units_waited``). Who holds it, since when
and what came of it are told to ``Liveness.on_held``. A run that skipped everything is recorded
as ``skipped``, not failed. Over the Supabase API alone (no session), a dead holder's lease is
free when it expires (``lease_seconds`` after its last heartbeat).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from shared.db.store import Store, StoreError
from shared.logs import get_logger
from shared.settings import Settings
from shared.sync.engine import SyncEngine
from shared.sync.entities import EntitySpec
from shared.sync.runs import Run, recorded_run

log = get_logger(__name__)

HEARTBEAT_SECONDS = 15.0
STALE_SECONDS = 90  # six missed heartbeats
LEASE_SECONDS = 120


@dataclass(frozen=True)
class Held:
    """A unit of work another run held: who (``holder``: its run id; ``job``, ``owner``: its
    process, host:pid), since when, and what this run did about it (``event``): ``skipped``,
    ``waiting``, ``done`` (the holder did it), ``taken_over`` (the holder died or failed, so
    this run does it); or ``reaped``: a dead run (``unit``: its job) this run marked abandoned,
    its units free again."""

    unit: str
    event: str
    holder: str | None = None
    job: str | None = None
    owner: str | None = None
    since: str | None = None
    detail: str | None = None

    @classmethod
    def of(cls, unit: str, event: str, answer: dict[str, Any], detail: str | None = None) -> Held:
        return cls(
            unit,
            event,
            answer.get("holder"),
            answer.get("job"),
            answer.get("owner"),
            answer.get("since"),
            detail,
        )


@dataclass(frozen=True)
class Liveness:
    """How a run proves it is alive and treats units held by other runs (see the module)."""

    heartbeat_seconds: float = HEARTBEAT_SECONDS
    stale_seconds: int = STALE_SECONDS
    lease_seconds: int = LEASE_SECONDS
    wait: bool = False  # wait for a unit held by a live run (a command), else skip it
    poll_seconds: float = 1.0  # while waiting, ask again this often
    on_held: Callable[[Held], None] | None = field(default=None, compare=False)

    @classmethod
    def of(
        cls,
        settings: Settings,
        *,
        wait: bool = False,
        on_held: Callable[[Held], None] | None = None,
    ) -> Liveness:
        return cls(
            heartbeat_seconds=settings.run_heartbeat_seconds,
            stale_seconds=settings.run_stale_seconds,
            lease_seconds=settings.lease_seconds,
            wait=wait,
            poll_seconds=settings.lease_poll_seconds,
            on_held=on_held,
        )

    def tell(self, held: Held) -> None:
        log.info("another run's work", unit=held.unit, holder=held.holder, what=held.event)
        if self.on_held is not None:
            self.on_held(held)


DEFAULT = Liveness()


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
    liveness: Liveness = DEFAULT,
) -> AsyncIterator[Run]:
    """A recorded run that reaps dead runs first and heartbeats while it works."""
    async with recorded_run(store, job, scope_id, connection_id=connection_id) as run:
        await store.call("run_heartbeat", p_id=str(run.id), p_owner=process_name())
        await _record_session(store, run)
        reaped = await store.call(
            "runs_reap", p_stale_seconds=liveness.stale_seconds, p_by=f"{job} {run.id}"
        )
        if reaped["abandoned"]:
            run.count(runs_abandoned=int(reaped["abandoned"]))
            log.warning("dead runs marked abandoned", jobs=reaped["jobs"])
            for dead in reaped.get("runs") or []:
                liveness.tell(Held.of(dead["job"], "reaped", dead, dead["why"]))
        stop = asyncio.Event()
        beat = asyncio.create_task(_heartbeat(store, run, liveness, stop))
        try:
            yield run
        finally:
            await _stop_heartbeat(beat, stop)
            if (
                run.status == "succeeded"
                and run.counts.get("units_skipped")
                and not (set(run.counts) - {"units_skipped", "runs_abandoned"})
            ):
                run.status = "skipped"


async def _record_session(store: Store, run: Run) -> None:
    """Record the process's session lock on the run; without one (the Supabase API, or the lock
    could not be taken) the run is known dead by its heartbeat only."""
    try:
        session = await store.session()
        if session is not None:
            await store.call("run_session", p_id=str(run.id), p_session=str(session))
    except StoreError as exc:
        log.warning("no session lock: this run is known dead by its heartbeat only", error=str(exc))


# how long the end of a run waits for its heartbeat to stop
HEARTBEAT_STOP_SECONDS = 10.0


async def _stop_heartbeat(beat: asyncio.Task[None], stop: asyncio.Event) -> None:
    """Stop the heartbeat: cancelled, and told to stop too, since a cancellation can be lost
    inside a connection pool's wait (Python 3.11) and the run must not hang on it; a beat still
    in a call stops by itself when the call returns."""
    stop.set()
    beat.cancel()
    await asyncio.wait({beat}, timeout=HEARTBEAT_STOP_SECONDS)


async def _heartbeat(store: Store, run: Run, liveness: Liveness, stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), liveness.heartbeat_seconds)
        if stop.is_set():
            return
        try:
            await store.session()  # taken again if its connection was lost (a restart)
            beat = await store.call(
                "run_heartbeat", p_id=str(run.id), p_lease_seconds=liveness.lease_seconds
            )
            if not beat["running"]:
                run.abandoned.set()
                log.warning("this run was marked abandoned by another job", run_id=str(run.id))
        except StoreError as exc:  # the work itself will meet the outage and say so
            log.warning("heartbeat failed", run_id=str(run.id), error=str(exc))


@asynccontextmanager
async def unit(
    store: Store, run: Run, name: str, liveness: Liveness = DEFAULT
) -> AsyncIterator[bool]:
    """Hold the lease ``name`` for the block; yields False when this run does not do the unit:
    another live run holds it (skipped), or this run waited and the holder did it."""
    mine = await _take(store, run, name, liveness)
    if not mine:
        yield False
        return
    outcome = "failed"
    try:
        yield True
        outcome = "done"
    finally:
        await store.call("lease_release", p_name=name, p_holder=str(run.id), p_outcome=outcome)


async def _take(store: Store, run: Run, name: str, liveness: Liveness) -> bool:
    """Acquire the lease, waiting for a live holder when ``liveness.wait``; whether this run
    does the unit now."""

    async def acquire() -> dict[str, Any]:
        answer: dict[str, Any] = await store.call(
            "lease_acquire", p_name=name, p_holder=str(run.id), p_seconds=liveness.lease_seconds
        )
        return answer

    taken = await acquire()
    previous = taken.get("previous") or {}
    if taken["acquired"] and previous.get("dead"):
        run.count(units_taken_over=1)
        liveness.tell(Held.of(name, "taken_over", previous, previous["dead"]))
    if taken["acquired"]:
        return True
    if not liveness.wait:
        run.count(units_skipped=1)
        liveness.tell(Held.of(name, "skipped", taken))
        return False
    liveness.tell(Held.of(name, "waiting", taken))
    while not taken["acquired"]:
        await asyncio.sleep(liveness.poll_seconds)
        taken = await acquire()
    run.count(units_waited=1)
    previous = taken.get("previous") or {}
    if previous.get("outcome") == "done":
        await store.call("lease_release", p_name=name, p_holder=str(run.id), p_outcome="done")
        run.units_done.add(name)
        liveness.tell(Held.of(name, "done", previous, "done by the run it waited for"))
        return False
    why = previous.get("dead") or (
        "it failed" if previous.get("outcome") == "failed" else "its lease expired"
    )
    liveness.tell(Held.of(name, "taken_over", previous, why))
    return True


async def engine_units(
    engine: SyncEngine,
    run: Run,
    kind: str,
    entities: Iterable[EntitySpec],
    action: Callable[[EntitySpec, Run], Awaitable[object]],
    *,
    side_by_side: bool = False,
    liveness: Liveness = DEFAULT,
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

    async def one(spec: EntitySpec) -> None:
        name = f"{kind}:{scope.scope_id(spec)}:{spec.name}"
        if name in run.units_done:
            return
        async with unit(engine.store, run, name, liveness) as mine:
            if mine:
                await action(spec, run)
                run.units_done.add(name)

    if not side_by_side:
        for spec in chosen:
            await one(spec)
        return
    tasks: dict[str, asyncio.Task[None]] = {}

    async def after_owner(spec: EntitySpec) -> None:
        owner = tasks.get(spec.sweep.owner) if spec.sweep is not None else None
        if owner is not None:
            await asyncio.wait([owner])  # its failure is raised by gather below, not here
        await one(spec)

    for spec in chosen:
        tasks[spec.name] = asyncio.create_task(after_owner(spec))
    results = await asyncio.gather(*tasks.values(), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
