"""The set-based SQL scorer agrees with the Python scorer, guest by guest, reason by reason."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.quality.rules import DEFAULT_RULES, Rule
from shared.quality.scoring import score
from tests.quality.conftest import enable_rules, insert_profile
from tests.quality.strategies import VALIDATORS, profiles
from tests.support.rows import ENTERPRISE_ID
from tests.support.tenancy import seed_tenancy

EXTRA = [
    Rule(field="loyalty_code", kind="required", weight=7),
    Rule(field="loyalty_code", kind="pattern", params={"regex": "^[A-Z]{2}[0-9]"}, weight=4),
    Rule(field="title", kind="required", weight=3),
    Rule(
        field="title",
        kind="allowed_values",
        params={"values": ["Mister", "Miss", "Misses"]},
        weight=2,
    ),
    Rule(field="first_name", kind="length", params={"min": 2, "max": 5}, weight=6),
    Rule(field="company", kind="required", weight=2),
]


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        seed_tenancy(connection)
        yield connection


def reason_keys(reasons: Any) -> list[tuple[str, str, str, str]]:
    return sorted((r["field"], r["kind"], r["rule"], r["message"]) for r in reasons)


@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sample=st.lists(profiles(last_name_present=True), min_size=30, max_size=60),
    extra=st.lists(VALIDATORS, max_size=4),
)
def test_sql_and_python_score_every_guest_alike(
    conn: psycopg.Connection, sample: list[dict[str, Any]], extra: list[Rule]
) -> None:
    conn.execute(
        "delete from public.guest_scores; delete from public.guest_facts; delete from public.guests;"
        " delete from public.quality_rules; delete from public.quality_rule_sets"
    )
    rules = DEFAULT_RULES + EXTRA + extra
    enable_rules(conn, ENTERPRISE_ID, [r.model_dump() for r in rules])
    ids = [insert_profile(conn, p) for p in sample]
    conn.execute("select public.quality_rescore(%s)", (ENTERPRISE_ID,))
    stored = {
        str(g): (s, r)
        for g, s, r in conn.execute(
            "select guest_mews_id, score, app.quality_reasons(failed_rules) from public.guest_scores where enterprise_id = %s",
            (ENTERPRISE_ID,),
        )
    }
    today = conn.execute("select current_date").fetchone()[0]  # type: ignore[index]
    for guest_id, profile in zip(ids, sample, strict=True):
        expected = score(profile, rules, today)
        got_score, got_reasons = stored[guest_id]
        assert got_score == expected.value, (profile, got_reasons)
        assert reason_keys(got_reasons) == sorted(
            (r.field, r.kind, r.rule, r.message) for r in expected.reasons
        )


def test_rescoring_writes_only_changes_and_keeps_history(conn: psycopg.Connection) -> None:
    enable_rules(conn, ENTERPRISE_ID, [r.model_dump() for r in DEFAULT_RULES])
    guest = insert_profile(conn, {"last_name": "Novák", "first_name": "Jan"})
    first = conn.execute("select public.quality_rescore(%s)", (ENTERPRISE_ID,)).fetchone()[0]  # type: ignore[index]
    again = conn.execute("select public.quality_rescore(%s)", (ENTERPRISE_ID,)).fetchone()[0]  # type: ignore[index]
    assert first == {"scored": 1, "changed": 1}
    assert again == {"scored": 1, "changed": 0}
    conn.execute(
        "update public.guests set phone = '+420601000000', birth_date = %s where mews_id = %s",
        (date(1980, 1, 1), guest),
    )
    one = conn.execute(
        "select public.quality_rescore(%s, %s::jsonb)", (ENTERPRISE_ID, f'["{guest}"]')
    ).fetchone()[0]  # type: ignore[index]
    assert one == {"scored": 1, "changed": 1}
    history = conn.execute(
        "select previous_score, score from public.guest_score_history"
    ).fetchall()
    assert len(history) == 1
    assert history[0][1] > history[0][0]


def test_a_dry_run_reports_the_change_and_writes_nothing(conn: psycopg.Connection) -> None:
    enable_rules(conn, ENTERPRISE_ID, [r.model_dump() for r in DEFAULT_RULES])
    for name in ("A", "B", "C"):
        insert_profile(conn, {"last_name": name, "first_name": "Jo"})
    conn.execute("select public.quality_rescore(%s)", (ENTERPRISE_ID,))
    draft = conn.execute("select public.quality_draft_rule_set(%s)", (ENTERPRISE_ID,)).fetchone()[
        0
    ]["id"]  # type: ignore[index]
    conn.execute(
        "delete from public.quality_rules where rule_set_id = %s and field = 'phone'", (draft,)
    )
    before = conn.execute(
        "select array_agg(score order by guest_mews_id) from public.guest_scores"
    ).fetchone()
    result = conn.execute("select public.quality_dry_run(%s)", (draft,)).fetchone()[0]  # type: ignore[index]
    assert result["guests"] == 3
    assert result["raised"] == 3
    assert result["average_after"] > result["average_before"]
    assert (
        conn.execute(
            "select array_agg(score order by guest_mews_id) from public.guest_scores"
        ).fetchone()
        == before
    )
    enabled = conn.execute("select public.quality_enable_rule_set(%s)", (draft,)).fetchone()[0]  # type: ignore[index]
    assert enabled["changed"] == 3
    statuses = dict(conn.execute("select version, status from public.quality_rule_sets").fetchall())
    assert statuses == {1: "retired", 2: "enabled"}
