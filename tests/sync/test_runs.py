"""Runs are recorded with honest outcomes; quarantined records are kept with their reasons."""

from __future__ import annotations

from pathlib import Path
from uuid import uuid4

import psycopg
import pytest

from shared.db.migrations import discover, migrate
from shared.db.store import Store, StoreError
from shared.sync.runs import (
    Run,
    quarantine,
    quarantine_item,
    recorded_run,
    resolve_quarantined,
)

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


def quarantine_rows(database_url: str) -> list[tuple[object, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "select entity, scope_id::text, mews_id, reason, raw, raw_text, sightings,"
            " resolved_at is not null from public.quarantine order by id"
        ).fetchall()


async def test_quarantine_takes_any_record_whatever_it_holds(
    store: Store, database_url: str
) -> None:
    kept = await quarantine(
        store,
        [
            quarantine_item(
                "customers", "not-a-uuid", {"Id": "a\x00", "Last\x00Name": ["x\x00"]}, "NUL\x00"
            ),
            quarantine_item("customers", None, ["an", "array"], "not a JSON object"),
            quarantine_item("customers", None, "text\x00", "not a JSON object"),
        ],
    )
    assert kept == 3
    assert quarantine_rows(database_url) == [
        (
            "customers",
            None,
            "a\ufffd",
            "NUL\ufffd",
            {"Id": "a\ufffd", "Last\ufffdName": ["x\ufffd"]},
            None,
            1,
            False,
        ),
        ("customers", None, None, "not a JSON object", None, '["an","array"]', 1, False),
        ("customers", None, None, "not a JSON object", None, '"text\\u0000"', 1, False),
    ]


async def test_quarantine_add_keeps_whatever_it_is_given(store: Store, database_url: str) -> None:
    result = await store.call(
        "quarantine_add",
        p_items=[{"entity": "customers", "raw": [1]}, 7, {"reason": "r", "raw": "text"}],
        p_run_id="00000000-0000-4000-8000-000000000009",  # no such run
    )
    assert result == {"quarantined": 3, "new": 3}
    assert quarantine_rows(database_url) == [
        ("customers", None, None, "no reason given", [1], None, 1, False),
        ("unknown", None, None, "not a quarantine item", 7, None, 1, False),
        ("unknown", None, None, "r", "text", None, 1, False),
    ]


async def test_a_record_version_is_one_entry_counted_at_each_sighting(
    store: Store, database_url: str
) -> None:
    scope = "00000000-0000-4000-8000-000000000001"
    first = quarantine_item("customers", scope, {"Id": "x", "CompanyId": "c"}, "CompanyId: bad")
    newer = quarantine_item("customers", scope, {"Id": "x", "CompanyId": "d"}, "CompanyId: bad")
    await quarantine(store, [first])
    await quarantine(store, [first, first])
    await quarantine(store, [newer])
    assert [(r[2], r[4], r[6]) for r in quarantine_rows(database_url)] == [
        ("x", {"Id": "x", "CompanyId": "c"}, 3),
        ("x", {"Id": "x", "CompanyId": "d"}, 1),
    ]


async def test_entries_are_resolved_when_a_valid_version_is_stored_and_reopened_if_seen_again(
    store: Store, database_url: str
) -> None:
    chain, other = "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"
    items = [quarantine_item("customers", chain, {"Id": i}, "bad") for i in ("x", "y", "z")]
    await quarantine(store, items)
    assert await resolve_quarantined(store, "customers", other, ["x"]) == 0  # another chain's x
    assert await resolve_quarantined(store, "companies", chain, ["x"]) == 0
    assert await resolve_quarantined(store, "customers", chain, ["x", "y", "q"]) == 2
    assert [r[7] for r in quarantine_rows(database_url)] == [True, True, False]
    await quarantine(store, items[:1])  # the bad version is back
    assert [(r[6], r[7]) for r in quarantine_rows(database_url)] == [
        (2, False),
        (1, True),
        (1, False),
    ]


def test_a_run_that_quarantined_records_still_succeeds_and_counts_them_per_entity() -> None:
    run = Run(id=uuid4(), job="backfill")
    for _ in range(21):
        run.quarantined("customers", 1)
    run.quarantined("reservations", 2)
    assert (run.status, run.error) == ("succeeded", None)
    assert (run.counts["customers_quarantined"], run.counts["reservations_quarantined"]) == (21, 2)


def test_units_left_for_the_next_run_make_it_partial_and_are_named_with_their_failures() -> None:
    run = Run(id=uuid4(), job="backfill")
    run.degrade("partial", "time budget spent")
    for n in range(5):
        run.left_for_later(f"customers window {n}", TimeoutError(f"no answer {n}"))
    assert (run.status, run.counts["units_left"]) == ("partial", 5)
    assert run.error == (
        "time budget spent; left for the next run: customers window 0: TimeoutError: no answer 0;"
        " customers window 1: TimeoutError: no answer 1; customers window 2: TimeoutError:"
        " no answer 2; and 2 more"
    )
    run.degrade("failed", "RuntimeError: boom")
    assert (run.status, run.error) == ("failed", "RuntimeError: boom")


def test_a_lesser_outcome_never_replaces_the_reason_for_a_worse_one() -> None:
    run = Run(id=uuid4(), job="poll_changes")
    run.degrade("failed", "customers/getAll: HTTP 401: Invalid AccessToken")
    run.quarantined("customers", 1)
    assert (run.status, run.error) == ("failed", "customers/getAll: HTTP 401: Invalid AccessToken")


async def test_a_run_error_holding_a_nul_is_recorded(store: Store, database_url: str) -> None:
    async with recorded_run(store, "process_events") as run:
        run.degrade("partial", "Mews said: \x00")
    assert run_rows(database_url)[0][3] == "Mews said: \ufffd"


def test_migrating_merges_the_duplicates_an_older_quarantine_kept(
    empty_database_url: str, tmp_path: Path
) -> None:
    for migration in discover():
        if migration.version < "20261125020100":
            (tmp_path / migration.path.name).write_text(migration.sql)
    migrate(empty_database_url, tmp_path)
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        for reason, raw, resolved in [
            ("old", '{"Id": "x"}', "now()"),
            ("new", '{"Id": "x"}', "null"),
            ("other", '{"Id": "x", "V": 2}', "now()"),
            ("kept", '{"Id": "y"}', "null"),
        ]:
            conn.execute(
                "insert into public.quarantine (entity, mews_id, reason, raw, resolved_at)"
                f" values ('customers', %s::jsonb->>'Id', %s, %s::jsonb, {resolved})",
                (raw, reason, raw),
            )
    migrate(empty_database_url)
    assert [(r[2], r[3], r[4], r[6], r[7]) for r in quarantine_rows(empty_database_url)] == [
        ("x", "new", {"Id": "x"}, 2, False),
        ("x", "other", {"Id": "x", "V": 2}, 1, True),
        ("y", "kept", {"Id": "y"}, 1, False),
    ]
