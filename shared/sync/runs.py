"""Recording runs honestly: every function invocation and command is a `sync_runs` row whose
status says what happened (a rate-limited or failed run is never recorded as a success)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from shared.db.store import Store
from shared.logs import get_logger, redact_text

FINAL_STATUSES = ("succeeded", "partial", "rate_limited", "failed")


@dataclass
class Run:
    """A run in progress: add to its counts; set ``status`` to downgrade the outcome."""

    id: UUID
    job: str
    counts: Counter[str] = field(default_factory=Counter)
    status: str = "succeeded"
    error: str | None = None

    def count(self, **increments: int) -> None:
        self.counts.update(increments)

    def degrade(self, status: str, error: str | None = None) -> None:
        """Lower the outcome (never raise it): succeeded < partial < rate_limited < failed."""
        if FINAL_STATUSES.index(status) > FINAL_STATUSES.index(self.status):
            self.status = status
        if error:
            self.error = redact_text(error)


def outcome_for(exc: BaseException) -> str:
    """The run status an exception means. Errors that are not failures (a rate limit) say so
    with a ``run_outcome`` class attribute, so this module needs no adapter's exceptions."""
    outcome = getattr(exc, "run_outcome", "failed")
    return outcome if outcome in FINAL_STATUSES else "failed"


@asynccontextmanager
async def recorded_run(store: Store, job: str, scope_id: UUID | None = None) -> AsyncIterator[Run]:
    """Start a run, yield it, and finish it with its honest outcome and one summary log line."""
    started = await store.call(
        "run_start", p_job=job, p_scope_id=str(scope_id) if scope_id else None
    )
    run = Run(id=UUID(started["id"]), job=job)
    log = get_logger("guesthub.run", job=job, run_id=str(run.id))
    try:
        yield run
    except BaseException as exc:
        run.degrade(outcome_for(exc), f"{type(exc).__name__}: {exc}")
        raise
    finally:
        await store.call(
            "run_finish",
            p_id=str(run.id),
            p_status=run.status,
            p_counts=dict(run.counts),
            p_error=run.error,
        )
        log.info("run finished", status=run.status, counts=dict(run.counts), error=run.error)


async def quarantine(store: Store, items: list[dict[str, Any]], run_id: UUID | None = None) -> int:
    """Keep records that failed to parse or map, with their reasons. Returns how many."""
    if not items:
        return 0
    result = await store.call(
        "quarantine_add", p_items=items, p_run_id=str(run_id) if run_id else None
    )
    return int(result["quarantined"])
