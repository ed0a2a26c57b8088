"""Runs are recorded with honest outcomes; quarantined records are kept with their reasons."""

from __future__ import annotations

import psycopg
import pytest

from shared.db.store import Store, StoreError
from shared.sync.runs import quarantine, recorded_run

pytestmark = pytest.mark.anyio


def run_rows(database_url: str) -> list[tuple[object, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "select job, status, counts, error, finished_at is not null from public.sync_runs"
        ).fetchall()


async def test_a_clean_run_is_recorded_as_succeeded_with_its_counts(
    store: Store, database_url: str
) -> None:
    async with recorded_run(store, "poll_changes") as run:
        run.count(fetched=3, upserted=2)
    assert run_rows(database_url) == [
        ("poll_changes", "succeeded", {"fetched": 3, "upserted": 2}, None, True)
    ]


async def test_a_run_that_raises_is_recorded_as_failed_and_the_error_propagates(
    store: Store, database_url: str
) -> None:
    with pytest.raises(RuntimeError):
        async with recorded_run(store, "push_changes"):
            raise RuntimeError("boom")
    assert run_rows(database_url) == [("push_changes", "failed", {}, "RuntimeError: boom", True)]


async def test_a_degraded_outcome_is_never_raised_back_to_success(
    store: Store, database_url: str
) -> None:
    async with recorded_run(store, "process_events") as run:
        run.degrade("rate_limited")
        run.degrade("partial")
    assert run_rows(database_url)[0][1] == "rate_limited"


async def test_finishing_a_run_twice_is_an_error(store: Store) -> None:
    started = await store.call("run_start", p_job="x")
    await store.call("run_finish", p_id=started["id"], p_status="succeeded")
    with pytest.raises(StoreError, match="is not running"):
        await store.call("run_finish", p_id=started["id"], p_status="failed")


async def test_quarantined_records_keep_their_reason_and_raw_body(
    store: Store, database_url: str
) -> None:
    kept = await quarantine(
        store,
        [
            {
                "entity": "customers",
                "mews_id": "abc",
                "reason": "LastName: field required",
                "raw": {"Id": "abc"},
            },
            {"entity": "webhook", "reason": "not JSON", "raw_text": "{oops"},
        ],
    )
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "select entity, reason, raw, raw_text from public.quarantine order by id"
        ).fetchall()
    assert kept == 2
    assert rows == [
        ("customers", "LastName: field required", {"Id": "abc"}, None),
        ("webhook", "not JSON", None, "{oops"),
    ]


async def test_an_error_that_means_rate_limited_records_rate_limited(
    store: Store, database_url: str
) -> None:
    class LimitedError(Exception):
        run_outcome = "rate_limited"

    with pytest.raises(LimitedError):
        async with recorded_run(store, "poll_changes"):
            raise LimitedError
    assert run_rows(database_url)[0][1] == "rate_limited"
