"""One job runner, whoever runs the job: the scheduled functions (``functions/_job.py``) and the
commands (``guesthub sync …``, ``guesthub events …``, ``guesthub score``) call the same two
entry points and differ only in their options.

- A Mews job (:func:`run_connections_job`) serves every due connection
  (:mod:`shared.connections.fleet`): each in its own live run, on its own token's budget.
- A database job (:func:`run_database_job`) is one live run.

Who runs a Mews job decides its options:

- :func:`scheduled`, a scheduled function: within the invocation's time budget, each
  connection claimed (one invocation serves it at a time) and due again ``every_seconds`` after
  its last pass, with a job's patience for Mews;
- :func:`interactive`, an operator's command: every active connection now (or one), without
  claiming them, with a person's patience for Mews. The units of work inside (the poll of one
  entity, the push of one chain) are still held by one worker at a time, so a command never
  overlaps a scheduled run's work, and a killed command holds back only the unit it was on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from shared.connections.fleet import (
    OK,
    ConnectionWork,
    FleetOptions,
    FleetResult,
    run_fleet,
)
from shared.db.store import Store
from shared.settings import Settings
from shared.sync.connect import INTERACTIVE_CONNECT_SECONDS, INTERACTIVE_RETRY
from shared.sync.liveness import DEFAULT, Held, Liveness, live_run
from shared.sync.runs import Run

DatabaseWork = Callable[[Store, Run], Awaitable[object]]
A_DAY = 24 * 3600.0  # a command's budget: it runs until it is done


def scheduled(
    settings: Settings, *, every_seconds: int = 0, exclusive: bool = True
) -> FleetOptions:
    """The options of a scheduled function (see the module)."""
    return FleetOptions(
        budget_seconds=settings.job_time_budget_seconds,
        concurrency=settings.job_concurrency,
        every_seconds=every_seconds,
        exclusive=exclusive,
        liveness=Liveness.of(settings),
    )


def interactive(
    settings: Settings,
    *,
    only: str | None = None,
    wait: bool = True,
    on_held: Callable[[Held], None] | None = None,
) -> FleetOptions:
    """The options of a command (see the module); ``only``: one connection's id. A unit held
    by another live run is waited for (``wait``), or skipped; ``on_held`` is told of each."""
    return FleetOptions(
        budget_seconds=A_DAY,
        concurrency=settings.job_concurrency,
        only=only,
        retry=INTERACTIVE_RETRY,
        connect_timeout=INTERACTIVE_CONNECT_SECONDS,
        exclusive=False,
        liveness=Liveness.of(settings, wait=wait, on_held=on_held),
    )


async def run_connections_job(
    store: Store, settings: Settings, job: str, work: ConnectionWork, options: FleetOptions
) -> FleetResult:
    """``work`` for every due connection (a Mews job)."""
    return await run_fleet(store, settings, job, work, options)


@dataclass(frozen=True)
class JobResult:
    """How a database job's run ended."""

    job: str
    run_id: str
    status: str
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None  # why the status is not `succeeded`

    @property
    def ok(self) -> bool:
        return self.status in OK

    def summary(self) -> dict[str, Any]:
        summary = {"run_id": self.run_id, "status": self.status, "counts": dict(self.counts)}
        return summary | ({"error": self.error} if self.error else {})


async def run_database_job(
    store: Store, job: str, work: DatabaseWork, liveness: Liveness = DEFAULT
) -> JobResult:
    """``work`` in one live run (a database job: no Mews)."""
    async with live_run(store, job, liveness=liveness) as run:
        await work(store, run)
    return JobResult(job, str(run.id), run.status, dict(run.counts), run.error)
