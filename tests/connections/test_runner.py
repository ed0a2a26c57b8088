"""One job runner for the scheduled functions and the commands: they differ only in options, and
a database job is one recorded live run whatever runs it."""

from __future__ import annotations

import psycopg
import pytest

from shared.connections import runner
from shared.db.store import Store
from shared.settings import load_settings
from shared.sync.connect import INTERACTIVE_RETRY
from shared.sync.runs import Run

pytestmark = pytest.mark.anyio


def test_a_scheduled_function_claims_within_its_budget_and_a_command_serves_all_now() -> None:
    """Scheduled: the settings' budget and concurrency, connections claimed, due again after
    ``every_seconds``. A command: no budget to speak of, nothing claimed, a person's patience."""
    settings = load_settings(job_time_budget_seconds=100, job_concurrency=3)
    scheduled = runner.scheduled(settings, every_seconds=60)
    assert (scheduled.budget_seconds, scheduled.concurrency, scheduled.every_seconds) == (
        100,
        3,
        60,
    )
    assert (scheduled.exclusive, scheduled.retry, scheduled.only) == (True, None, None)
    command = runner.interactive(settings, only="conn-1")
    assert (command.budget_seconds, command.concurrency, command.only) == (24 * 3600, 3, "conn-1")
    assert (command.exclusive, command.retry) == (False, INTERACTIVE_RETRY)


async def test_a_database_job_is_one_recorded_run_with_its_counts(
    store: Store, database_url: str
) -> None:
    """What the work counts is the run's, recorded and returned; a failing work is recorded
    failed and raised."""

    async def work(_: Store, run: Run) -> None:
        run.count(things=3)

    async def failing(_: Store, run: Run) -> None:
        run.count(things=1)
        raise RuntimeError("boom")

    result = await runner.run_database_job(store, "purge_inbox", work)
    assert (result.status, result.counts, result.ok) == ("succeeded", {"things": 3}, True)
    assert result.summary() == {
        "run_id": result.run_id,
        "status": "succeeded",
        "counts": {"things": 3},
    }
    with pytest.raises(RuntimeError, match="boom"):
        await runner.run_database_job(store, "purge_inbox", failing)
    with psycopg.connect(database_url) as conn:
        runs = conn.execute(
            "select job, status, counts from public.sync_runs order by started_at"
        ).fetchall()
    assert runs == [
        ("purge_inbox", "succeeded", {"things": 3}),
        ("purge_inbox", "failed", {"things": 1}),
    ]
