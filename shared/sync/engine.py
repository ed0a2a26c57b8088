"""The sync engine: first load by ``CreatedUtc`` windows, ``UpdatedUtc`` polls with an overlap,
refreshes by id (webhooks, WebSocket), and a reconciling full compare.

Generic over the entity specs (:mod:`shared.sync.entities`): every method takes an entity's
:class:`~shared.sync.entities.EntitySpec` (names are checked once, where they come in: the
commands, the functions, the inbox).

Rules it keeps (docs/MEWS.md#sync-rules):
- windows are half-open, chained, ≤ 31 days; independent windows run concurrently, all inside
  the token's shared request budget (the client's rate limiter);
- a checkpoint moves only after its window's rows are committed (a crash re-reads at most the
  windows in flight; the guarded upsert makes re-reading harmless);
- a record that fails validation or mapping, or that the database refuses, is quarantined with
  its reason (one entry per record version), the page goes on and the window completes;
- a 408 splits the window in two and tries again;
- a window (or page of owner ids) whose Mews calls keep failing (5xx, no answer, still too
  heavy when small) after the client's retries is left for the next run: its checkpoint does
  not move, the run (when there is one) is ``partial`` and names it, and the other windows and
  entities carry on. A 429 or a 401 is not a window's fault: it stops the pass as before.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from shared.db.store import Store
from shared.logs import get_logger
from shared.mews.client import MewsClient, Page
from shared.mews.errors import MewsNetworkError, MewsServerError, MewsTimeoutError
from shared.mews.windows import Window, format_utc, plan_windows, poll_windows
from shared.sync.bisect import about_the_data, isolate
from shared.sync.entities import ENTITIES, SPECS, EntitySpec, followers
from shared.sync.runs import EntityCount, Run, quarantine, quarantine_item

__all__ = ["ENTITIES", "Counts", "Scope", "SyncEngine"]

log = get_logger(__name__)
CHANGED = "updated_utc"  # the time field of polls and full compares
# what Mews answers a unit of work that keeps failing for reasons of its own: the unit is left
# for the next run, the others go on
LEFT_FOR_LATER = (MewsServerError, MewsNetworkError, MewsTimeoutError)
Progress = Callable[[str, int, int], None]  # (entity, rows, windows done)


@dataclass(frozen=True)
class Scope:
    """What one connection (AccessToken) serves: an enterprise and its chain."""

    chain_id: str
    enterprise_id: str
    oldest_utc: datetime
    now_utc: datetime

    def scope_id(self, spec: EntitySpec) -> str:
        """The chain's or the enterprise's id, as the entity is kept per chain or enterprise."""
        return self.enterprise_id if spec.scope == "enterprise" else self.chain_id

    def by_filter(self, spec: EntitySpec) -> dict[str, list[str]]:
        """The scope filter of a read by time filter: the chain's or the enterprise's id."""
        if spec.scope == "enterprise":
            return {"enterprise_ids": [self.enterprise_id]}
        return {"chain_ids": [self.chain_id]}


@dataclass(frozen=True)
class Counts:
    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(a + b for a, b in zip(self.astuple(), other.astuple(), strict=True)))

    def astuple(self) -> tuple[int, ...]:
        return (self.fetched, self.inserted, self.updated, self.unchanged, self.quarantined)

    @property
    def written(self) -> int:
        return self.inserted + self.updated


class SyncEngine:
    def __init__(
        self,
        store: Store,
        client: MewsClient,
        *,
        concurrency: int = 8,
        overlap: timedelta = timedelta(minutes=5),
        lag: timedelta = timedelta(minutes=1),
        progress: Progress | None = None,
        enterprise_id: str | None = None,
    ) -> None:
        self.store = store
        self.client = client
        # the enterprise this engine serves: None is the token's own enterprise; a portfolio
        # token needs one named (configuration/get describes a dummy enterprise otherwise)
        self.enterprise_id = enterprise_id
        self.concurrency = concurrency
        self.overlap = overlap
        self.lag = lag
        self.progress = progress
        self._scope: Scope | None = None

    # -- scope -----------------------------------------------------------------------------

    async def scope(self) -> Scope:
        """The connection's enterprise and chain (``configuration/get``), registered locally."""
        if self._scope is None:
            config = await self.client.configuration(self.enterprise_id)
            raw = config.enterprise.model_dump(mode="json", by_alias=True)
            registered = await self.store.call("register_enterprise", p_enterprise=raw)
            created = config.enterprise.created_utc
            oldest = registered.get("oldest_utc")
            if oldest:
                created = min(created, datetime.fromisoformat(oldest))
            self._scope = Scope(
                chain_id=config.enterprise.chain_id,
                enterprise_id=config.enterprise.id,
                oldest_utc=created.astimezone(UTC),
                now_utc=config.now_utc.astimezone(UTC),
            )
        return self._scope

    def forget_scope(self) -> None:
        """Ask Mews again next time (its ``NowUtc`` moves on between passes)."""
        self._scope = None

    # -- one page in -----------------------------------------------------------------------

    async def ingest(self, spec: EntitySpec, page: Page[Any], run: Run | None) -> Counts:
        """Upsert a page: its records as Mews sent them, from which the database derives the
        typed columns (half the bytes of mapped rows, each record parsed once there). What
        cannot be read or stored costs only itself: what the client's model refuses is
        quarantined with its reason, a page the database refuses for its data is bisected down
        to the records it refuses; the rest is written, and the quarantine entries of records
        now stored are resolved."""
        scope = await self.scope()
        scope_id = scope.scope_id(spec)
        records, bad = self._rows(spec, page, scope)
        upserted = await isolate(records, partial(self._upsert, spec, scope_id), about_the_data)
        bad += [
            quarantine_item(spec.name, scope_id, record, f"database refused it: {exc}")
            for record, exc in upserted.refused
        ]
        # the upsert resolved the open quarantine entries of what it stored (a valid version)
        quarantined = await quarantine(self.store, bad, run.id if run else None)
        written = Counter[str]()
        for result in upserted.results:
            written.update({k: int(result[k]) for k in ("inserted", "updated", "unchanged")})
        counts = Counts(
            len(page.records),
            written["inserted"],
            written["updated"],
            written["unchanged"],
            quarantined,
        )
        _record(run, spec.name, counts)
        return counts

    def _rows(
        self, spec: EntitySpec, page: Page[Any], scope: Scope
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The page's records to write (those the client's model accepts: a wrong type is
        quarantined even where a column would take it), and the quarantine items of the rest."""
        scope_id = scope.scope_id(spec)
        bad = [quarantine_item(spec.name, scope_id, r.record, r.reason) for r in page.rejected]
        return page.raws, bad

    async def _upsert(
        self, spec: EntitySpec, scope_id: str, records: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """The guarded upsert of Mews records (``upsert_<table>(p_scope_id, p_records)``, the
        typed columns derived in SQL)."""
        result: dict[str, Any] = await self.store.call(
            spec.upsert_function, p_scope_id=scope_id, p_records=records
        )
        return result

    # -- reads by filter -------------------------------------------------------------------

    def _pages(self, spec: EntitySpec, scope: Scope, **filters: Any) -> AsyncIterator[Page[Any]]:
        if spec.read is None:
            raise ValueError(f"{spec.name} has no time filter")
        return spec.read(self.client)(**scope.by_filter(spec), **filters)

    async def _window(
        self,
        spec: EntitySpec,
        field: str,
        window: Window,
        run: Run | None,
        extra: dict[str, Any] | None = None,
    ) -> Counts:
        """Every page of one window; a 408 splits the window and retries the halves."""
        scope = await self.scope()
        total = Counts()
        try:
            async for page in self._pages(spec, scope, **{field: window.filter()}, **(extra or {})):
                total += await self._ingest_page(spec, page, run)
        except MewsTimeoutError:
            if window.end - window.start < timedelta(minutes=2):
                raise
            log.info(
                "window too heavy, splitting", entity=spec.name, start=format_utc(window.start)
            )
            first, second = window.split()
            return (await self._window(spec, field, first, run, extra)) + (
                await self._window(spec, field, second, run, extra)
            )
        return total

    async def _ingest_page(self, spec: EntitySpec, page: Page[Any], run: Run | None) -> Counts:
        counts = await self.ingest(spec, page, run)
        if self.progress:
            self.progress(spec.name, counts.fetched, 0)
        return counts

    # -- first load ------------------------------------------------------------------------

    async def backfill(
        self, spec: EntitySpec, run: Run | None = None, *, restart: bool = False
    ) -> Counts:
        """First load of one entity by ``CreatedUtc`` windows, resumable window by window.
        ``restart`` loads again from scratch: the checkpoint's finished mark and windows done are
        cleared first, so an interrupted restart resumes like any interrupted first load."""
        entity = spec.name
        scope = await self.scope()
        scope_id = scope.scope_id(spec)
        where = {"p_scope_id": scope_id, "p_entity": entity, "p_phase": "backfill"}
        if restart:
            await self.store.call("checkpoint_reset", **where)
        checkpoint = await self.store.call("checkpoint_get", **where)
        if checkpoint["high_water_utc"]:
            return Counts()  # finished earlier
        if spec.sweep is not None:
            if not await self.loaded(SPECS[spec.sweep.owner]):
                # swept by its owners' ids: before their first load ends it would miss those
                # loaded after it, and be marked done; the next pass sweeps them all
                log.info(
                    "first load waits for its owners' first load",
                    entity=entity,
                    owner=spec.sweep.owner,
                )
                if run is not None:
                    run.count_waiting(entity, spec.sweep.owner)
                return Counts()
            return await self._sweep(spec, run)
        if spec.first_load is None:  # one read of everything
            everything = await self._or_left(f"{entity} first load", self._read_all(spec, run), run)
            if everything is not None:
                await self._finish_backfill(scope_id, spec, scope.now_utc)
            return everything or Counts()
        end = scope.now_utc - self.lag
        state = checkpoint.get("state") or {}
        if checkpoint.get("low_water_utc"):
            # a resumed run keeps the end its first attempt planned, so windows line up
            end = datetime.fromisoformat(state.get("end", format_utc(end)).replace("Z", "+00:00"))
        else:
            await self.store.call(
                "checkpoint_save",
                p_scope_id=scope_id,
                p_entity=entity,
                p_phase="backfill",
                p_low_water_utc=scope.oldest_utc.isoformat(),
                p_state={"end": format_utc(end), "done": []},
            )
            state = {"done": []}
        done = set(state.get("done") or [])
        windows = [
            w
            for w in plan_windows(scope.oldest_utc, end, newest_first=True)
            if format_utc(w.start) not in done
        ]
        field = spec.first_load
        gate = asyncio.Semaphore(self.concurrency)
        total = Counts()
        left = False

        async def one(window: Window) -> None:
            nonlocal total, left
            async with gate:
                counts = await self._or_left(
                    f"{entity} first-load window {_span(window)}",
                    self._window(spec, field, window, run),
                    run,
                )
                if counts is None:
                    left = True  # not marked done: the next run reads it
                    return
                await self.store.call(
                    "checkpoint_window_done",
                    p_scope_id=scope_id,
                    p_entity=entity,
                    p_phase="backfill",
                    p_window_start=format_utc(window.start),
                )
                total += counts
                if self.progress:
                    self.progress(entity, 0, 1)

        await _gather_all(one(w) for w in windows)
        if not left:
            await self._finish_backfill(scope_id, spec, end)
        return total

    async def _read_all(self, spec: EntitySpec, run: Run | None) -> Counts:
        total = Counts()
        async for page in self._pages(spec, await self.scope()):
            total += await self._ingest_page(spec, page, run)
        return total

    async def _or_left(self, unit: str, work: Awaitable[Counts], run: Run | None) -> Counts | None:
        """``work``'s counts, or None when Mews kept failing it (:data:`LEFT_FOR_LATER`): then
        ``unit`` is recorded on ``run`` as left for the next run. Without a run to say so, the
        failure is raised."""
        try:
            return await work
        except LEFT_FOR_LATER as exc:
            if run is None:
                raise
            log.warning("left for the next run", unit=unit, error=str(exc))
            run.left_for_later(unit, exc)
            return None

    async def loaded(self, spec: EntitySpec) -> bool:
        """Whether the entity's first load has finished (polling takes over where it ended)."""
        scope = await self.scope()
        checkpoint = await self.store.call(
            "checkpoint_get", p_scope_id=scope.scope_id(spec), p_entity=spec.name, p_phase="poll"
        )
        return checkpoint["high_water_utc"] is not None

    async def _finish_backfill(self, scope_id: str, spec: EntitySpec, end: datetime) -> None:
        # the next job plans with statistics of what was loaded, not with none (autovacuum may be
        # off, or not have run yet): analyzed when the load wrote a large share of the table;
        # before the finished mark, so that a failure here is retried by the next run
        await self.store.call("analyze_tables", p_tables={spec.table: None})
        await self.store.call(
            "checkpoint_save",
            p_scope_id=scope_id,
            p_entity=spec.name,
            p_phase="backfill",
            p_high_water_utc=end.isoformat(),
        )
        # polling takes over where the first load ended
        await self.store.call(
            "checkpoint_save",
            p_scope_id=scope_id,
            p_entity=spec.name,
            p_phase="poll",
            p_high_water_utc=end.isoformat(),
        )

    def planned_windows(self, scope: Scope) -> int:
        return len(plan_windows(scope.oldest_utc, scope.now_utc - self.lag))

    # -- polling ---------------------------------------------------------------------------

    async def poll(
        self, spec: EntitySpec, run: Run | None = None, *, phase: str = "poll"
    ) -> Counts:
        """One incremental pass: ``UpdatedUtc`` windows from the high-water mark (minus the
        overlap) to Mews' now (minus the lag), and the spec's further windows (deletions). What
        it writes, webhooks missed."""
        entity = spec.name
        scope = await self.scope()
        if spec.read is None:
            return Counts()  # no time filter: refreshed with their owners, and swept
        scope_id = scope.scope_id(spec)
        checkpoint = await self.store.call(
            "checkpoint_get", p_scope_id=scope_id, p_entity=entity, p_phase=phase
        )
        high_water = checkpoint["high_water_utc"]
        start = datetime.fromisoformat(high_water) if high_water else scope.oldest_utc
        total = Counts()
        for window in poll_windows(start, scope.now_utc, overlap=self.overlap, lag=self.lag):
            unit = f"{entity} poll window {_span(window)}"
            counts = await self._or_left(unit, self._poll_window(spec, window, run), run)
            if counts is None:
                break  # the high-water mark stays before it: the next poll reads it again
            total += counts
            await self.store.call(
                "checkpoint_save",
                p_scope_id=scope_id,
                p_entity=entity,
                p_phase=phase,
                p_high_water_utc=window.end.isoformat(),
            )
        if run is not None and total.written:
            run.count_entity(entity, "corrected_by_poll", total.written)
        return total

    async def _poll_window(self, spec: EntitySpec, window: Window, run: Run | None) -> Counts:
        """One poll window: the changes, and the spec's further reads of it (deletions)."""
        total = await self._window(spec, CHANGED, window, run)
        for also in spec.poll_also:
            total += await self._window(spec, also.field, window, run, dict(also.filters))
        return total

    # -- by id (webhooks, WebSocket, push) ------------------------------------------------

    async def refresh(self, spec: EntitySpec, ids: list[str], run: Run | None = None) -> Counts:
        """Fetch records by id, in batches of the documented maximum, and upsert them; with
        them, the records swept by their ids (a customer's identity documents), read side by
        side with them (the ids are known before either answers: one round trip, not two)."""
        if spec.by_id is None:
            raise ValueError(f"cannot refresh {spec.name} by id")
        by_id = spec.by_id
        scope = await self.scope()
        total = Counts()
        for batch in _batches(sorted(set(ids)), by_id.batch):

            async def records(batch: list[str] = batch) -> Counts:
                counts = Counts()
                named = self._named_scope(spec, scope)
                async for page in by_id.read(self.client)(**{by_id.ids: batch}, **named):
                    counts += await self.ingest(spec, page, run)
                return counts

            parts = [records(), *(self.refresh_owned(f, batch, run) for f in followers(spec.name))]
            for result in await asyncio.gather(*parts, return_exceptions=True):
                if isinstance(result, BaseException):
                    raise result  # the first failure, once every part has ended
                total += result
        return total

    def _named_scope(self, spec: EntitySpec, scope: Scope) -> dict[str, list[str] | None]:
        """The scope filter of a read by id: the enterprise's always; the chain's only for a
        portfolio token (an engine with a named enterprise), which must name it."""
        if spec.scope == "enterprise":
            return {"enterprise_ids": [scope.enterprise_id]}
        return {"chain_ids": [scope.chain_id] if self.enterprise_id else None}

    async def refresh_owned(
        self,
        spec: EntitySpec,
        owner_ids: list[str],
        run: Run | None = None,
        *,
        gate: asyncio.Semaphore | None = None,
    ) -> Counts:
        """An entity without a time filter (identity documents), re-read by the ids of its
        owners (customers), as many a call as documented. The calls run side by side, twice as
        many as the windows of a first load (or as many as ``gate`` lets through); the
        client's rate limiter keeps them inside the token's budget, so they are bound by Mews,
        not by waiting for one another."""
        if spec.sweep is None:
            raise ValueError(f"{spec.name} is not read by the ids of its owners")
        read = spec.sweep.read
        named = self._named_scope(spec, await self.scope())
        gate = gate or asyncio.Semaphore(self.concurrency * 2)
        total = Counts()

        async def one(batch: list[str]) -> None:
            nonlocal total
            async with gate:
                async for page in read.read(self.client)(**{read.ids: batch}, **named):
                    counts = await self._ingest_page(spec, page, run)
                    total += counts  # after the await: a side-by-side call's counts not lost

        await _gather_all(one(batch) for batch in _batches(owner_ids, read.batch))
        return total

    async def _sweep(self, spec: EntitySpec, run: Run | None) -> Counts:
        """The records of every mirrored owner (inactive ones too), by owner ids read from the
        database 1000 at a time: the calls of several pages of ids side by side under one gate
        (:meth:`refresh_owned`), the next ids read while they run; only a few pages of ids
        are held at once, however many owners there are. A page of ids whose calls keep failing
        is left (the sweep is then not marked done: the next one reads every owner again)."""
        if spec.sweep is None:
            raise ValueError(f"{spec.name} is not swept")
        owner_ids = spec.sweep.owner_ids
        scope = await self.scope()
        scope_id = scope.scope_id(spec)
        gate = asyncio.Semaphore(self.concurrency * 2)
        ahead = self.concurrency * 2 // 10 + 2  # pages of ids in flight: enough to fill the gate
        total = Counts()
        left = False
        running: set[asyncio.Task[Counts | None]] = set()
        after: str | None = None

        def add(counts: Counts | None) -> None:
            nonlocal total, left
            total += counts or Counts()
            left = left or counts is None

        try:
            while True:
                ids = await self.store.call(
                    owner_ids, p_chain_id=scope_id, p_after=after, p_limit=1000
                )
                if not ids:
                    break
                unit = f"{spec.name} of {spec.sweep.owner} {ids[0]}..{ids[-1]}"
                work = self.refresh_owned(spec, ids, run, gate=gate)
                running.add(asyncio.create_task(self._or_left(unit, work, run)))
                after = ids[-1]
                while len(running) >= ahead:
                    done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        add(task.result())
        finally:
            # a failure lets the calls under way finish (their writes land), then is raised
            results = await asyncio.gather(*running, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
            add(result)
        if not left:
            await self._finish_backfill(scope_id, spec, scope.now_utc)
        return total

    # -- reconcile -------------------------------------------------------------------------

    async def reconcile(self, spec: EntitySpec, run: Run | None = None) -> Counts:
        """Compare everything, window by window (``UpdatedUtc`` over the whole history): what
        it writes is drift that webhooks and polls missed. An entity without a time filter is
        swept."""
        entity = spec.name
        scope = await self.scope()
        total = Counts()
        if spec.sweep is not None:
            return await self._sweep(spec, run)
        for window in plan_windows(scope.oldest_utc, scope.now_utc - self.lag):
            unit = f"{entity} reconcile window {_span(window)}"
            counts = await self._or_left(unit, self._window(spec, CHANGED, window, run), run)
            total += counts or Counts()  # a window left: the next full compare reads it
        if run is not None:
            run.count_entity(entity, "corrected", total.written)
        return total


def _record(run: Run | None, entity: str, counts: Counts) -> None:
    """Add a page's counts to the run (its quarantined records counted: the run still succeeds)."""
    if run is None:
        return
    names: tuple[EntityCount, ...] = ("fetched", "inserted", "updated", "unchanged")
    values = counts.astuple()[: len(names)]
    for what, value in zip(names, values, strict=True):
        if value:
            run.count_entity(entity, what, value)
    run.quarantined(entity, counts.quarantined)


def _span(window: Window) -> str:
    return f"{format_utc(window.start)}..{format_utc(window.end)}"


def _batches(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def _gather_all(coroutines: Any) -> None:
    """Run all; if one fails, let the others finish their window (so their checkpoints land),
    then raise the first failure."""
    results = await asyncio.gather(*coroutines, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
