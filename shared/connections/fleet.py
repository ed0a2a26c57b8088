"""Every job over every active connection: claim the due ones, serve each within the
invocation's time budget, hand the rest on.

An invocation (a scheduled function or a command) claims up to ``concurrency`` connections at a
time (``public.connection_claim``: a lease per (connection, job) with an expiry, taken with
``FOR UPDATE SKIP LOCKED``, so concurrent instances never serve one connection twice at once),
serves each in its own recorded run on its own token's budget, and claims the next as soon as
one is done, until none is due or the time budget is spent. A connection still working when the
budget ends stops where it is (its checkpoints hold what was committed), is recorded
``partial`` and is due again first; the next invocation carries on. One connection failing,
slow or refused by Mews costs only itself: the others are served by the other slots.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.connections.model import Connection
from shared.connections.registry import (
    Broken,
    claim,
    discover,
    register_environment,
    release,
    split_usable,
)
from shared.db.store import Store, StoreError
from shared.logs import get_logger, redact_text
from shared.mews.client import MewsClient, RetryPolicy
from shared.settings import Settings
from shared.sync.connect import connected_client
from shared.sync.engine import SyncEngine
from shared.sync.liveness import DEFAULT, Liveness, live_run, process_name
from shared.sync.runs import FINAL_STATUSES, Run

log = get_logger(__name__)


@dataclass(frozen=True)
class ConnectionPass:
    """One job's pass over one connection: an engine per enterprise it covers, one run."""

    connection: Connection
    engines: list[SyncEngine]
    run: Run
    liveness: Liveness = DEFAULT  # how its units treat those held by other runs


ConnectionWork = Callable[[Store, ConnectionPass], Awaitable[None]]
OK = ("succeeded", "partial", "skipped")
BUDGET_SPENT = "time budget spent; the next invocation carries on"
# what a token covers: asked again daily (docs/MEWS.md#configuration)
REDISCOVER_AFTER = timedelta(days=1)


@dataclass(frozen=True)
class FleetOptions:
    budget_seconds: float = 240.0  # below the function's timeout
    concurrency: int = 4  # connections served at once by one invocation
    every_seconds: int = 0  # a connection is due again this long after its last pass started
    only: str | None = None  # serve this connection alone
    # one worker per connection at a time (a lease); a job whose own units are safe to share
    # (the inbox: rows are claimed SKIP LOCKED) serves every active connection without one, so
    # that a killed worker holds nothing back
    exclusive: bool = True
    retry: RetryPolicy | None = None
    connect_timeout: float | None = None
    engine_options: dict[str, Any] = field(default_factory=dict)
    liveness: Liveness = DEFAULT  # heartbeat, staleness, leases; wait for held units or skip


@dataclass(frozen=True)
class Outcome:
    """How one connection's pass ended."""

    connection_id: str
    name: str | None
    status: str
    run_id: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    completed: bool = True
    # what stopped the pass (a command explains it as it explains any failure)
    exception: BaseException | None = field(default=None, compare=False, repr=False)

    def summary(self) -> dict[str, Any]:
        return {
            "connection": self.connection_id,
            "name": self.name,
            "run_id": self.run_id,
            "status": self.status,
            "counts": self.counts,
            "error": self.error,
            **({} if self.completed else {"completed": False}),
        }


@dataclass
class FleetResult:
    job: str
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def status(self) -> str:
        """The worst outcome; ``skipped`` when no connection was due."""
        if not self.outcomes:
            return "skipped"
        ranked = [o.status for o in self.outcomes if o.status in FINAL_STATUSES]
        if not ranked:
            return "skipped"
        return max(ranked, key=FINAL_STATUSES.index)

    @property
    def ok(self) -> bool:
        return self.status in OK

    def summary(self) -> dict[str, Any]:
        """Status, every connection's outcome, and the counts of all of them added up."""
        counts: Counter[str] = Counter()
        for outcome in self.outcomes:
            counts.update(outcome.counts)
        return {
            "job": self.job,
            "status": self.status,
            "counts": dict(counts),
            "connections": [o.summary() for o in self.outcomes],
        }


async def run_fleet(
    store: Store,
    settings: Settings,
    job: str,
    work: ConnectionWork,
    options: FleetOptions | None = None,
) -> FleetResult:
    """Serve ``job`` for every due connection within the time budget (see the module)."""
    options = options or FleetOptions()
    await register_environment(store, settings)
    return await _Invocation(store, settings, job, work, options).serve_all()


class _Invocation:
    """One invocation's claims, passes and outcomes."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        job: str,
        work: ConnectionWork,
        options: FleetOptions,
    ) -> None:
        self.store = store
        self.settings = settings
        self.job = job
        self.work = work
        self.options = options
        self.loop = asyncio.get_running_loop()
        self.deadline = self.loop.time() + options.budget_seconds
        self.holder = f"{process_name()}:{uuid.uuid4()}"
        # renewed while the invocation works (its heartbeat); a dead instance's connections are
        # due again at once when its holder names its session lock (serve_all), else on expiry
        self.lease_seconds = options.liveness.stale_seconds
        self.served: set[str] = set()  # each connection once per invocation
        self.waiting: list[dict[str, Any]] | None = None  # not exclusive: the rest to serve

    async def serve_all(self) -> FleetResult:
        if self.options.exclusive:
            self.holder += await _session_mark(self.store)
        renewing = asyncio.create_task(self.renew_leases())
        try:
            return await self.claim_and_serve()
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing

    async def renew_leases(self) -> None:
        """The invocation's heartbeat: extend the leases it holds."""
        while True:
            await asyncio.sleep(self.options.liveness.heartbeat_seconds)
            try:
                await self.store.call(
                    "connection_renew", p_holder=self.holder, p_lease_seconds=self.lease_seconds
                )
            except StoreError as exc:  # the work itself meets the outage and says so
                log.warning("leases not renewed", error=str(exc))

    async def claim_and_serve(self) -> FleetResult:
        result = FleetResult(self.job)
        running: set[asyncio.Task[Outcome]] = set()
        while True:
            room = max(self.options.concurrency, 1) - len(running)
            if room > 0 and self.loop.time() < self.deadline - 1:
                claimed, broken = await self.take(room)
                self.served |= {c.id for c in claimed} | {c for c, _ in broken}
                for connection_id, reason in broken:
                    if self.options.exclusive:
                        await release(
                            self.store,
                            self.job,
                            connection_id,
                            self.holder,
                            "failed",
                            error=reason,
                        )
                    result.outcomes.append(Outcome(connection_id, None, "failed", error=reason))
                running |= {asyncio.create_task(self.serve(c)) for c in claimed}
                if broken and not claimed and not running:
                    continue  # claim again: the unusable ones are excluded now
            if not running:
                break
            done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            result.outcomes += [task.result() for task in done]
        return result

    async def take(self, room: int) -> tuple[list[Connection], Broken]:
        """Up to ``room`` connections to serve next: claimed by lease, or (not exclusive) the
        active ones this invocation has not served yet."""
        if self.options.exclusive:
            return await claim(
                self.store,
                self.settings,
                self.job,
                self.holder,
                limit=room,
                lease_seconds=self.lease_seconds,
                every_seconds=self.options.every_seconds,
                only=self.options.only,
                exclude=self.served,
            )
        if self.waiting is None:
            self.waiting = [
                row
                for row in await self.store.call("connections_active")
                if self.options.only in (None, str(row["integration_id"]))
            ]
        rows, self.waiting = self.waiting[:room], self.waiting[room:]
        return split_usable(rows, self.settings)

    async def serve(self, connection: Connection) -> Outcome:
        """One connection's pass in its own run; never raises (its outcome says what
        happened)."""
        completed = True
        run: Run | None = None
        failure: BaseException | None = None
        try:
            async with live_run(
                self.store, self.job, connection_id=connection.id, liveness=self.options.liveness
            ) as run:
                try:
                    async with (
                        asyncio.timeout_at(self.deadline),
                        connected_client(
                            self.settings,
                            self.store,
                            access_token=connection.access_token,
                            retry=self.options.retry,
                            connect_timeout=self.options.connect_timeout,
                        ) as client,
                    ):
                        connection, engines = await connection_engines(
                            self.store, connection, client, self.options
                        )
                        await self.work(
                            self.store,
                            ConnectionPass(connection, engines, run, self.options.liveness),
                        )
                except TimeoutError:
                    completed = False
                    run.degrade("partial", BUDGET_SPENT)
        except Exception as exc:  # recorded by the run; it costs this connection only
            failure = exc
            error = redact_text(f"{type(exc).__name__}: {exc}")
            log.warning(
                "connection pass failed", job=self.job, connection=connection.id, error=error
            )
            if run is None:  # the run could not even start (the database)
                await self.release(connection, "failed", completed=True, error=error)
                return Outcome(connection.id, connection.name, "failed", error=error, exception=exc)
        if run is None:  # pragma: no cover - live_run yields a run or raises
            raise RuntimeError("no run")
        await self.release(connection, run.status, completed=completed, error=run.error)
        return Outcome(
            connection.id,
            connection.name,
            run.status,
            str(run.id),
            dict(run.counts),
            run.error,
            completed,
            failure,
        )

    async def release(
        self, connection: Connection, status: str, *, completed: bool, error: str | None
    ) -> None:
        """Release the lease; if the database cannot be reached, its expiry frees it."""
        if not self.options.exclusive:
            return
        try:
            await release(
                self.store,
                self.job,
                connection.id,
                self.holder,
                status,
                completed=completed,
                error=error,
            )
        except Exception as exc:
            log.warning("lease not released", connection=connection.id, error=str(exc))


async def _session_mark(store: Store) -> str:
    """``@<session id>`` when this process holds its session lock: the connections it claims
    are then due again the moment it dies (``app.holder_gone``); else nothing (their leases'
    expiry)."""
    try:
        session = await store.session()
    except StoreError as exc:
        log.warning("no session lock: claimed connections are freed by expiry only", error=str(exc))
        return ""
    return f"@{session}" if session is not None else ""


async def connection_engines(
    store: Store, connection: Connection, client: MewsClient, options: FleetOptions
) -> tuple[Connection, list[SyncEngine]]:
    """An engine per enterprise the connection covers (asked of Mews when not known or old),
    in the order of ``connection.enterprise_ids``; the connection as discovered."""
    if not connection.enterprise_ids or _stale(connection.discovered_at):
        connection = await discover(store, connection, client)
    return connection, [
        SyncEngine(
            store,
            client,
            # a single-enterprise token's own enterprise needs no EnterpriseId
            enterprise_id=enterprise_id if connection.is_portfolio else None,
            **options.engine_options,
        )
        for enterprise_id in connection.enterprise_ids
    ]


def _stale(discovered_at: str | None) -> bool:
    if discovered_at is None:
        return True
    try:
        moment = datetime.fromisoformat(discovered_at)
    except ValueError:
        return False  # just discovered
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return datetime.now(UTC) - moment > REDISCOVER_AFTER
