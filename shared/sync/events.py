"""Processing the inbox: claim a batch, fetch what it names (deduplicated, batched), upsert,
complete — or record the failure for a later retry, then the dead-letter queue. And purging
what was processed once its retention period is over.

One failing event never fails its neighbours. When Mews or the database refuses a refresh for
its data (:func:`~shared.sync.bisect.about_the_data`), the entity's ids are bisected until the
refused ones are alone; only the events that name them fail (and retry, then dead-letter), the
others complete. A failure of the moment (Mews 5xx or a timeout, a rate limit, the database
unavailable) fails the whole batch for a later retry, as it would fail any part of it.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Protocol

from shared.db.store import Store, StoreError
from shared.intake.events import FetchPlan, plan_fetches
from shared.logs import get_logger
from shared.mews.errors import MewsError
from shared.sync.bisect import about_the_data, isolate
from shared.sync.entities import SPECS, EntitySpec
from shared.sync.runs import Run, outcome_for, without_nul

log = get_logger(__name__)
NARROWING_ATTEMPTS = 64  # refreshes spent isolating refused ids, per entity and batch

Refused = dict[tuple[str, str], BaseException]  # (entity, id) → why its refresh was refused


class Refresher(Protocol):
    """What the inbox needs of the sync engine: fetch records by id and upsert them."""

    async def refresh(self, spec: EntitySpec, ids: list[str], run: Run | None = None) -> Any: ...


@dataclass(frozen=True)
class Route:
    """Which inbox events a drain takes: those naming one of ``enterprise_ids`` and, with
    ``integration_id``, those of that integration naming none of them (its WebSocket frames)
    and those naming neither (older rows, Integration webhooks). See ``public.inbox_claim``."""

    enterprise_ids: tuple[str, ...]
    integration_id: str | None = None

    def claim_arguments(self) -> dict[str, Any]:
        return {
            "p_enterprise_ids": list(self.enterprise_ids),
            "p_integration_id": self.integration_id,
        }


async def process_events(
    store: Store,
    engine: Refresher,
    run: Run,
    *,
    route: Route | None = None,
    batch_size: int = 500,
    max_attempts: int = 5,
    backoff_seconds: int = 30,
    time_budget_seconds: float = 240.0,
    until_empty: bool = True,
) -> bool:
    """Drain the inbox (the events ``route`` names; without one, every event) batch by batch
    until it is empty or the time budget is spent. Without ``until_empty``, a batch smaller
    than ``batch_size`` is the last (the caller is told of events stored later: the real-time
    worker's notifications), which spares a claim that finds nothing. Whether events may be
    left (the time budget, or a full batch, ended it)."""
    deadline = time.monotonic() + time_budget_seconds
    retry = {"p_max_attempts": max_attempts, "p_backoff_seconds": backoff_seconds}
    # a routed claim records the run that holds the rows: a dead run's rows are claimable at once
    routed = {**route.claim_arguments(), "p_holder": str(run.id)} if route else {}
    while time.monotonic() < deadline:
        claimed = await store.call("inbox_claim", p_limit=batch_size, p_lock_seconds=300, **routed)
        if not claimed:
            return False
        plan = plan_fetches(claimed)
        run.count(
            inbox_claimed=len(claimed),
            events=plan.events,
            events_ignored=plan.ignored,
            events_unknown=plan.unknown,
        )
        try:
            refused = await _refresh(engine, plan, run)
        except (MewsError, StoreError) as exc:
            await _fail(store, run, {str(exc): plan.inbox_ids}, retry)
            run.degrade(outcome_for(exc), str(exc))
            return False  # retried after their backoff
        failing = _failing_events(claimed, refused)
        failed = {inbox_id for ids in failing.values() for inbox_id in ids}
        if failing:
            await _fail(store, run, failing, retry)
            run.degrade("partial", f"{len(failed)} inbox event(s) failed: {next(iter(failing))}")
        done = await store.call(
            "inbox_complete", p_ids=[i for i in plan.inbox_ids if i not in failed]
        )
        run.count(inbox_completed=done["completed"])
        if not until_empty and len(claimed) < batch_size:
            return False
    return True


async def _refresh(engine: Refresher, plan: FetchPlan, run: Run) -> Refused:
    """Refresh every entity's ids, the entities side by side (a batch of customers and
    reservations costs one round trip to Mews, not one per entity; the client's limiter keeps
    them within the token's budget); the ids refused for their data, each with its error. A
    failure of the moment is raised once every entity's refresh has ended."""
    refused: Refused = {}

    async def one(entity: str, ids: set[str]) -> None:
        run.count_entity(entity, "ids", len(ids))

        async def attempt(part: list[str]) -> Any:
            return await engine.refresh(SPECS[entity], part, run)  # a name of the registry's maps

        outcome = await isolate(
            sorted(ids), attempt, about_the_data, max_attempts=NARROWING_ATTEMPTS
        )
        refused.update({(entity, record_id): exc for record_id, exc in outcome.refused})

    entities = sorted(plan.ids.items())
    for result in await asyncio.gather(*(one(e, i) for e, i in entities), return_exceptions=True):
        if isinstance(result, BaseException):
            raise result
    return refused


def _failing_events(claimed: list[dict[str, Any]], refused: Refused) -> dict[str, list[int]]:
    """The inbox rows that name a refused id, grouped by the error to record for them."""
    failing: dict[str, list[int]] = defaultdict(list)
    if not refused:
        return failing
    for row in claimed:
        named = plan_fetches([row]).ids
        for entity, ids in sorted(named.items()):
            bad = sorted(i for i in ids if (entity, i) in refused)
            if bad:
                error = f"{entity} {bad[0]}: {refused[(entity, bad[0])]}"
                failing[error].append(int(row["id"]))
                break
    return failing


async def _fail(
    store: Store, run: Run, failing: dict[str, list[int]], retry: dict[str, int]
) -> None:
    """Record failed attempts: retried later with backoff, dead after the last attempt."""
    for error, inbox_ids in failing.items():
        outcome = await store.call(
            "inbox_fail", p_ids=inbox_ids, p_error=without_nul(error), **retry
        )
        run.count(inbox_failed=outcome["failed"], inbox_dead=outcome["dead"])
        log.warning("inbox events failed", error=error, events=len(inbox_ids), **outcome)


async def purge_inbox(
    store: Store,
    run: Run,
    *,
    retention_days: int,
    runs_retention_days: int | None = None,
    batch: int = 10_000,
    time_budget_seconds: float = 240.0,
) -> int:
    """Delete processed and refused inbox rows older than ``retention_days`` and, when
    ``runs_retention_days`` is given, finished runs older than that (the newest run of each job,
    scope and connection is kept: the health views read it), batch by batch (each call short),
    until none is left or the time budget is spent. Returns how many inbox rows."""
    deadline = time.monotonic() + time_budget_seconds
    purged = await _purge_batches(store, "inbox_purge", retention_days, batch, deadline)
    run.count(inbox_purged=purged)
    if runs_retention_days is not None:
        runs = await _purge_batches(store, "runs_purge", runs_retention_days, batch, deadline)
        run.count(runs_purged=runs)
    return purged


async def _purge_batches(
    store: Store, fn: str, retention_days: int, batch: int, deadline: float
) -> int:
    purged = 0
    while time.monotonic() < deadline:
        result = await store.call(fn, p_retention_days=retention_days, p_batch=batch)
        purged += int(result["purged"])
        if result["purged"] < batch:
            break
    return purged
