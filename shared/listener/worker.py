"""The real-time worker: the always-on service drains the inbox as events arrive and pushes staff
edits within seconds, with the code and guarantees of the scheduled jobs.

An inbox row stored (by the webhook function or a socket of this service) notifies
``guesthub_inbox`` with the enterprise it names, or the integration (WebSocket events name no
enterprise: docs/MEWS.md#websocket, #general-webhooks); a staff edit notifies
``guesthub_push`` with its chain (migration ``realtime_notifies``). The worker ``LISTEN``s on a
session connection of its own (a direct database URL: Supabase's transaction pooler does not
carry notifications) and wakes the drain of the connections a notification names. Each
connection has one :class:`Drainer`: a recorded run (``realtime``, a new one every
``run_seconds``) holding the token's client and engines, which runs the very
``process_events`` of the scheduled job (claims with SKIP LOCKED held by the run, routing by
EnterpriseId/IntegrationId, ids deduplicated into one read by id per entity and batch within
the token's shared budget (docs/MEWS.md#rate-limit), dead letters, per-record isolation), its
routes side by side, each call bounded (``drain_seconds``: about a batch) so that
rescoring follows each batch under a steady stream and a stop finishes the batch in hand.

Edits are pushed per chain once the chain's edits have been quiet for ``push_debounce``
seconds (at most ``push_max_delay`` after the first; one call per guest, whatever it was
edited in between), by a push loop beside the drain, under the scheduled push's lease of the
chain (``push_changes:<chain>``), so the two never push one chain at once (a turn that finds
the lease held tries again after ``push_max_delay``; each run starts with a turn, for what was
edited while no run pushed). A push backlog takes
a bounded share of the token's budget: ``push_concurrency`` guests in flight at once,
``push_batch`` a batch, ``push_seconds`` a turn, while the drain's reads go on.

A run another job marked abandoned (a database restart cut its session lock before its
heartbeat took it again: its claims and its lease are free for others) ends at once and a new
one goes on.

Nothing depends on a notification arriving: after (re)connecting, every drain is woken (what
was stored while nobody listened); without LISTEN (the Supabase API, the transaction pooler,
or the connection lost) every drain polls the inbox every ``poll_seconds``; while listening,
every ``backstop_seconds`` (events whose retry came due). The scheduled ``process_events`` and
``push_changes`` stay as the safety net.

After a drain that read guests, and after each push turn, the chain's changed guests get their
facts and scores at once (:func:`shared.quality.live.rescore_changed`, a page at most: more is
the score job's): after a drain, the guests it read, by id; after a push turn, and at most
every ``backstop_seconds`` instead, the chain's recently synced guests (what others wrote).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from shared.connections import jobs
from shared.connections.fleet import ConnectionPass, FleetOptions, connection_engines
from shared.connections.model import Connection
from shared.db.store import Store, StoreError
from shared.listener.backoff import Backoff
from shared.logs import get_logger, redact_text
from shared.quality.live import rescore_changed
from shared.settings import Settings
from shared.sync.connect import connected_client
from shared.sync.engine import SyncEngine
from shared.sync.entities import EntitySpec
from shared.sync.events import Refresher, Route
from shared.sync.events import process_events as drain_inbox
from shared.sync.liveness import Liveness, live_run, unit
from shared.sync.push import push_changes
from shared.sync.runs import Run

log = get_logger(__name__)

INBOX_CHANNEL = "guesthub_inbox"
PUSH_CHANNEL = "guesthub_push"
LISTEN_APPLICATION = "guesthub-listen"  # the LISTEN session, as pg_stat_activity names it
TRANSACTION_POOLER_PORT = "6543"  # Supabase's transaction mode: no LISTEN across transactions

GUESTS = "guests"  # the mirror table of the entity whose records are guests
ConnectionSource = Callable[[], Awaitable[list[Connection]]]


def listen_url(settings: Settings) -> str | None:
    """Where to LISTEN: the direct database URL (or Supabase's session pooler); None on the
    Supabase API or the transaction pooler (the worker then polls)."""
    if settings.database_url is None:
        return None
    url = settings.database_url.get_secret_value()
    try:
        port = str(conninfo_to_dict(url).get("port") or "")
    except psycopg.ProgrammingError:
        return None
    return None if port == TRANSACTION_POOLER_PORT else url


@dataclass
class WorkerState:
    """How the worker goes (for the health endpoint and the tests)."""

    listening: bool = False
    listens: int = 0  # LISTEN (re-)established
    notifications: int = 0
    drains: int = 0  # process_events calls
    pushes: int = 0  # push turns
    rescored: int = 0  # guests whose facts and score were refreshed after a change
    failures: int = 0
    last_error: str | None = None

    def snapshot(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Drainer:
    """One connection's drain and push (see the module)."""

    connection: Connection
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    chains: set[str] = field(default_factory=set)
    edits: dict[str, float] = field(default_factory=dict)  # chain → first notified edit
    last_edit: dict[str, float] = field(default_factory=dict)  # chain → last notified edit
    edit: asyncio.Event = field(default_factory=asyncio.Event)  # wakes the push loop
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def edited(self, chain_id: str) -> None:
        now = time.monotonic()
        self.edits.setdefault(chain_id, now)
        self.last_edit[chain_id] = now
        self.edit.set()

    def retry(self, chain_id: str) -> None:
        """Push the chain again after the longest delay (a new edit's debounce may come
        first)."""
        self.edits.setdefault(chain_id, time.monotonic())
        self.last_edit.setdefault(chain_id, math.inf)
        self.edit.set()

    def pushes_due(self, debounce: float, max_delay: float) -> list[str]:
        now = time.monotonic()
        return [
            chain
            for chain, first in self.edits.items()
            if now - self.last_edit[chain] >= debounce or now - first >= max_delay
        ]

    def next_push_in(self, debounce: float, max_delay: float) -> float | None:
        if not self.edits:
            return None
        now = time.monotonic()
        return max(
            0.0,
            min(
                min(self.last_edit[c] + debounce, first + max_delay) - now
                for c, first in self.edits.items()
            ),
        )


def routed_to(connection: Connection, payload: str) -> bool:
    """Whether an inbox notification (an enterprise id, an integration id, or nothing) may be
    for ``connection``'s drain."""
    return not payload or payload == connection.id or payload in connection.enterprise_ids


class Worker:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        source: ConnectionSource,
        *,
        listen: str | None,
        poll_seconds: float = 2.0,
        backstop_seconds: float = 30.0,
        refresh_seconds: float = 60.0,
        run_seconds: float = 300.0,
        drain_seconds: float = 0.5,
        push_debounce: float = 0.5,
        push_max_delay: float = 5.0,
        push_seconds: float = 10.0,
        push_batch: int = 25,
        push_concurrency: int = 4,
        shutdown_seconds: float = 30.0,
        liveness: Liveness | None = None,
        engine_options: dict[str, Any] | None = None,
        rescore: bool = True,
    ) -> None:
        self._settings = settings
        self._store = store
        self._source = source
        self._listen_url = listen
        self._poll = poll_seconds
        self._backstop = backstop_seconds
        self._refresh = refresh_seconds
        self._run_seconds = run_seconds
        self._drain_seconds = drain_seconds
        self._debounce = push_debounce
        self._max_delay = push_max_delay
        self._push_seconds = push_seconds
        self._push_batch = push_batch
        self._push_concurrency = push_concurrency
        self._shutdown = shutdown_seconds
        self._liveness = liveness or Liveness.of(settings)
        self._options = FleetOptions(engine_options=engine_options or {})
        self._rescore_guests = rescore
        self._rng = random.Random()  # noqa: S311 - jitter
        self.drainers: dict[str, Drainer] = {}
        self._scanned: dict[str, float] = {}  # chain → when its changed guests were last scanned
        self._retiring: set[asyncio.Task[None]] = set()
        self.state = WorkerState()

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop``: follow the connections, listen, drain; then finish what is in hand."""
        listening = (
            asyncio.create_task(self._listen(self._listen_url, stop))
            if self._listen_url is not None
            else None
        )
        if listening is None:
            log.warning("no LISTEN (no direct database URL): the inbox is polled", every=self._poll)
        try:
            while not stop.is_set():
                delay = await self._follow()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
        finally:
            if listening is not None:
                listening.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listening
            await self._stop_all()

    # the connections

    async def _follow(self) -> float:
        try:
            wanted = {c.id: c for c in await self._source()}
        except Exception as exc:  # the database away: the drains keep running
            self.state.last_error = f"connections: {type(exc).__name__}"
            log.warning("connections not read; drains kept", error=str(exc))
            return min(self._refresh, 5.0)
        for conn_id in [c for c in self.drainers if c not in wanted]:
            self._retire(self.drainers.pop(conn_id))
        for conn_id, connection in wanted.items():
            held = self.drainers.get(conn_id)
            running = held is not None and held.task is not None and not held.task.done()
            if held is not None and running and held.connection.key == connection.key:
                held.connection = connection
                continue
            if held is not None:
                self._retire(self.drainers.pop(conn_id))
            self._start(connection)
        return self._refresh

    def _start(self, connection: Connection) -> None:
        drainer = Drainer(connection)
        drainer.wake.set()  # what was stored before this drain existed
        drainer.task = asyncio.create_task(self._drain_forever(drainer))
        self.drainers[connection.id] = drainer

    def _retire(self, drainer: Drainer) -> None:
        """Stop a drain; it finishes what it holds (awaited at shutdown)."""
        drainer.stop.set()
        drainer.wake.set()
        if drainer.task is not None and not drainer.task.done():
            self._retiring.add(drainer.task)
            drainer.task.add_done_callback(self._retiring.discard)

    async def _stop_all(self) -> None:
        for drainer in self.drainers.values():
            self._retire(drainer)
        tasks = set(self._retiring)
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=self._shutdown)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
            log.warning("drains cancelled at shutdown", drains=len(pending))

    # notifications

    def notified(self, channel: str, payload: str) -> None:
        """Wake the drains a notification names."""
        self.state.notifications += 1
        for drainer in self.drainers.values():
            if channel == PUSH_CHANNEL:
                if payload in drainer.chains:
                    drainer.edited(payload)
            elif routed_to(drainer.connection, payload):
                drainer.wake.set()

    def _wake_all(self) -> None:
        for drainer in self.drainers.values():
            for chain in drainer.chains:
                drainer.edited(chain)
            drainer.wake.set()

    async def _listen(self, url: str, stop: asyncio.Event) -> None:
        backoff = Backoff(base=0.5, cap=30.0)
        while not stop.is_set():
            try:
                conn = await psycopg.AsyncConnection.connect(
                    url,
                    autocommit=True,
                    application_name=LISTEN_APPLICATION,
                    keepalives=1,
                    keepalives_idle=10,
                    keepalives_interval=5,
                    keepalives_count=3,
                )
                async with conn:
                    await conn.execute(f"listen {INBOX_CHANNEL}")
                    await conn.execute(f"listen {PUSH_CHANNEL}")
                    self.state.listening = True
                    self.state.listens += 1
                    backoff.reset()
                    log.info("listening for inbox events and staff edits")
                    self._wake_all()  # what was stored while nobody listened
                    await self._receive(conn, stop)
            except psycopg.Error as exc:
                self.state.failures += 1
                self.state.last_error = f"listen: {type(exc).__name__}"
                log.warning(
                    "LISTEN connection lost; polling until it is back",
                    error=redact_text(str(exc)),
                )
            finally:
                self.state.listening = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=backoff.next_delay(self._rng))

    async def _receive(self, conn: psycopg.AsyncConnection[Any], stop: asyncio.Event) -> None:
        while not stop.is_set():
            async for note in conn.notifies(timeout=1.0):
                self.notified(note.channel, note.payload)
            await conn.execute("select 1")  # a dead connection says so here

    # one connection's drain

    async def _drain_forever(self, drainer: Drainer) -> None:
        backoff = Backoff(base=1.0, cap=30.0)
        label = drainer.connection.label()
        while not drainer.stop.is_set():
            try:
                await self._one_run(drainer)
                backoff.reset()
            except Exception as exc:  # recorded by the run; this connection only
                self.state.failures += 1
                self.state.last_error = f"drain: {type(exc).__name__}"
                log.warning(
                    "real-time drain failed; retrying",
                    connection=label,
                    error=redact_text(f"{type(exc).__name__}: {exc}"),
                )
                # until the backoff is over, or a notification says the database is back
                drainer.wake.clear()
                await _first_of((drainer.stop, drainer.wake), backoff.next_delay(self._rng))
                drainer.wake.set()

    async def _one_run(self, drainer: Drainer) -> None:
        """One recorded run of the drain: until ``run_seconds`` have passed or it is stopped."""
        ends = time.monotonic() + self._run_seconds
        connection = drainer.connection
        async with (
            live_run(
                self._store, "realtime", connection_id=connection.id, liveness=self._liveness
            ) as run,
            connected_client(
                self._settings, self._store, access_token=connection.access_token
            ) as client,
        ):
            connection, engines = await connection_engines(
                self._store, connection, client, self._options
            )
            drainer.connection = connection
            chains = {(await engine.scope()).chain_id: engine for engine in engines}
            drainer.chains = set(chains)
            for chain_id in chains:  # what was edited while no run pushed (or a push failed)
                drainer.edited(chain_id)
            work = ConnectionPass(connection, engines, run, self._liveness)
            ended = asyncio.Event()
            pushing = asyncio.create_task(self._push_loop(drainer, work, chains, ended))
            try:
                # a run another job marked abandoned (a database restart cut its session lock
                # before the heartbeat took it again) holds nothing any more: a new one goes on
                abandoned = run.abandoned
                while not (drainer.stop.is_set() or abandoned.is_set()) and time.monotonic() < ends:
                    await self._wait(drainer, ends, abandoned)
                    if drainer.stop.is_set() or abandoned.is_set() or not drainer.wake.is_set():
                        continue
                    drainer.wake.clear()
                    if await self._drain(work, chains):
                        drainer.wake.set()  # events left (a budget cut it short)
                if abandoned.is_set():
                    log.warning("real-time run marked abandoned; a new one takes over")
                    drainer.wake.set()  # its claims are free: the next run drains them at once
            finally:
                ended.set()  # the push in hand finishes
                await pushing

    async def _wait(self, drainer: Drainer, ends: float, abandoned: asyncio.Event) -> None:
        """Until woken, or the poll comes round (which wakes the drain), or the run ends or is
        marked abandoned."""
        poll = self._backstop if self.state.listening else self._poll
        timeout = min(poll, max(0.0, ends - time.monotonic()))
        await _first_of((drainer.wake, abandoned), timeout)
        if drainer.wake.is_set() or abandoned.is_set() or timeout < poll:
            return  # woken, or the run's end, not the poll
        drainer.wake.set()
        if not self.state.listening:  # no notification of edits either
            for chain in drainer.chains:
                drainer.edited(chain)

    async def _push_loop(
        self,
        drainer: Drainer,
        work: ConnectionPass,
        chains: dict[str, SyncEngine],
        ended: asyncio.Event,
    ) -> None:
        """Beside the drain: each chain's edits once quiet for the debounce (see the module);
        a failed push is the scheduled push's to retry."""
        while not (drainer.stop.is_set() or ended.is_set()):
            drainer.edit.clear()
            delay = drainer.next_push_in(self._debounce, self._max_delay)
            await _first_of((drainer.edit, drainer.stop, ended), delay)
            for chain_id in drainer.pushes_due(self._debounce, self._max_delay):
                drainer.edits.pop(chain_id, None)
                drainer.last_edit.pop(chain_id, None)
                if chain_id not in chains:
                    continue
                try:
                    pushed = await self._push(work, chain_id, chains[chain_id])
                except Exception as exc:  # the drain goes on; push_changes retries it
                    self.state.failures += 1
                    self.state.last_error = f"push: {type(exc).__name__}"
                    work.run.count(realtime_push_failed=1)
                    log.warning("real-time push failed", error=redact_text(str(exc)))
                    continue
                if not pushed:  # the scheduled push holds the chain: what it misses, later
                    drainer.retry(chain_id)
                    continue
                await self._rescore(work.run, chain_id)

    async def _drain(self, work: ConnectionPass, chains: Iterable[str]) -> bool:
        """The scheduled job's drain of this connection, each call bounded in time; the
        guests a call read are rescored at once. The scheduled job's routes
        (:func:`jobs.inbox_routes`), side by side. While listening, a short batch ends a call
        (what is stored later notifies: no claim that finds nothing). Whether events may be
        left."""
        routes = jobs.inbox_routes(work.connection, work.engines)

        async def one(refresher: Refresher, route: Route) -> bool:
            noting = _NotingGuests(refresher)
            more = await drain_inbox(
                self._store,
                noting,
                work.run,
                route=route,
                time_budget_seconds=self._drain_seconds,
                until_empty=not self.state.listening,
            )
            if noting.guests:
                for chain_id in chains:
                    await self._rescore(work.run, chain_id, noting.guests)
            return more

        left = await asyncio.gather(*(one(refresher, route) for refresher, route in routes))
        self.state.drains += 1
        return any(left)

    async def _rescore(self, run: Run, chain_id: str, guests: set[str] | None = None) -> None:
        """Facts and scores of the chain's guests just written (``guests``: read by id) or
        edited; a refusal is the score job's to meet again, never the drain's. Every
        ``backstop_seconds`` the chain's recently synced guests are scanned instead (what other
        writers changed: a catch-up's poll, enrichment)."""
        if not self._rescore_guests:
            return
        now = time.monotonic()
        if guests is not None and now - self._scanned.get(chain_id, -math.inf) < self._backstop:
            ids: set[str] | None = guests
        else:
            ids, self._scanned[chain_id] = None, now
        try:
            refresh = await rescore_changed(self._store, chain_id, ids=ids)
        except StoreError as exc:
            run.count(rescore_failed=1)
            log.warning("rescore failed; the score job covers it", error=str(exc))
            return
        run.count(
            facts_refreshed=refresh.facts, scored=refresh.scored, duplicate_pairs=refresh.pairs
        )
        self.state.rescored += refresh.facts

    async def _push(self, work: ConnectionPass, chain_id: str, engine: SyncEngine) -> bool:
        """One push turn of a chain's edits, under the scheduled push's lease; False when
        another run held it."""
        async with unit(self._store, work.run, f"push_changes:{chain_id}", work.liveness) as mine:
            if mine:
                await push_changes(
                    self._store,
                    engine,
                    work.run,
                    limit=self._push_batch,
                    concurrency=self._push_concurrency,
                    chain_ids=[chain_id],
                    time_budget_seconds=self._push_seconds,
                )
                self.state.pushes += 1
        return mine


class _NotingGuests:
    """A drain's refresher that notes the guests it refreshed (for their rescoring by id)."""

    def __init__(self, refresher: Refresher) -> None:
        self._refresher = refresher
        self.guests: set[str] = set()

    async def refresh(self, spec: EntitySpec, ids: list[str], run: Run | None = None) -> Any:
        result = await self._refresher.refresh(spec, ids, run)
        if spec.table == GUESTS:
            self.guests.update(ids)
        return result


async def _first_of(events: Iterable[asyncio.Event], seconds: float | None) -> None:
    """Until one of ``events`` is set, or ``seconds`` have passed (None: no limit)."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
