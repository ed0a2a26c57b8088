"""Processing the inbox: claim a batch, fetch what it names (deduplicated, batched), upsert,
complete — or record the failure for a later retry, then the dead-letter queue. And purging
what was processed once its retention period is over."""

from __future__ import annotations

import time

from shared.db.store import Store, StoreError
from shared.intake.events import plan_fetches
from shared.logs import get_logger
from shared.mews.errors import MewsError
from shared.sync.engine import SyncEngine
from shared.sync.runs import Run, outcome_for

log = get_logger(__name__)


async def process_events(
    store: Store,
    engine: SyncEngine,
    run: Run,
    *,
    batch_size: int = 500,
    max_attempts: int = 5,
    backoff_seconds: int = 30,
    time_budget_seconds: float = 240.0,
) -> None:
    """Drain the inbox batch by batch until it is empty or the time budget is spent."""
    deadline = time.monotonic() + time_budget_seconds
    while time.monotonic() < deadline:
        claimed = await store.call("inbox_claim", p_limit=batch_size, p_lock_seconds=300)
        if not claimed:
            return
        plan = plan_fetches(claimed)
        run.count(
            inbox_claimed=len(claimed),
            events=plan.events,
            events_ignored=plan.ignored,
            events_unknown=plan.unknown,
        )
        try:
            for entity, ids in sorted(plan.ids.items()):
                run.count(**{f"{entity}_ids": len(ids)})
                await engine.refresh(entity, sorted(ids), run)
        except (MewsError, StoreError) as exc:
            outcome = await store.call(
                "inbox_fail",
                p_ids=plan.inbox_ids,
                p_error=str(exc),
                p_max_attempts=max_attempts,
                p_backoff_seconds=backoff_seconds,
            )
            run.count(inbox_failed=outcome["failed"], inbox_dead=outcome["dead"])
            run.degrade(outcome_for(exc), str(exc))
            log.warning("inbox batch failed", error=str(exc), **outcome)
            return
        done = await store.call("inbox_complete", p_ids=plan.inbox_ids)
        run.count(inbox_completed=done["completed"])


async def purge_inbox(
    store: Store,
    run: Run,
    *,
    retention_days: int,
    batch: int = 10_000,
    time_budget_seconds: float = 240.0,
) -> int:
    """Delete processed and refused inbox rows older than ``retention_days``, batch by batch
    (each call short), until none is left or the time budget is spent. Returns how many."""
    deadline = time.monotonic() + time_budget_seconds
    purged = 0
    while time.monotonic() < deadline:
        result = await store.call("inbox_purge", p_retention_days=retention_days, p_batch=batch)
        purged += int(result["purged"])
        if result["purged"] < batch:
            break
    run.count(inbox_purged=purged)
    return purged
