"""A rule set's cost is bounded where it is saved and where it is enabled: an admin's write that
takes the set over a bound is refused naming the bound and its limit, and nothing changes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from shared.quality import rules_file
from shared.quality.rules import DEFAULT_RULES
from tests.quality.conftest import enable_rules
from tests.support.rows import ENTERPRISE_ID
from tests.support.tenancy import add_user, as_role, seed_tenancy

DEFAULTS = [r.model_dump() for r in DEFAULT_RULES]
TOO_MANY_PATTERNS = "a rule set uses at most 10 distinct patterns (this one: 11)"


def pattern_rule(regex: str) -> dict[str, Any]:
    return {"field": "email", "kind": "pattern", "params": {"regex": regex}, "weight": 1}


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        seed_tenancy(conn)
        enable_rules(conn, ENTERPRISE_ID, DEFAULTS)
        yield conn


@pytest.fixture
def admin(conn: psycopg.Connection) -> str:
    return add_user(conn, enterprise_id=ENTERPRISE_ID, role="admin")


def one(conn: psycopg.Connection, sql: str, *params: Any) -> Any:
    row = conn.execute(sql, params).fetchone()
    assert row is not None
    return row[0]


def draft(conn: psycopg.Connection) -> str:
    return str(one(conn, "select public.quality_draft_rule_set(%s)", ENTERPRISE_ID)["id"])


def rules_in(conn: psycopg.Connection, rule_set: str) -> int:
    return int(
        one(conn, "select count(*) from public.quality_rules where rule_set_id = %s", rule_set)
    )


def add_rule(conn: psycopg.Connection, rule_set: str, rule: dict[str, Any]) -> None:
    """As a frontend writes a rule (the trigger fills in its enterprise)."""
    conn.execute(
        "insert into public.quality_rules (rule_set_id, field, kind, params, weight)"
        " values (%s, %s, %s, %s, %s)",
        (rule_set, rule["field"], rule["kind"], json.dumps(rule["params"]), rule["weight"]),
    )


def save_unchecked(conn: psycopg.Connection, rule_set: str, count: int) -> None:
    """The rules of a set as they could be saved before the bounds: ``count`` distinct patterns
    and nothing else, written with no trigger."""
    with conn.transaction():
        conn.execute("set local session_replication_role = replica")
        conn.execute("delete from public.quality_rules where rule_set_id = %s", (rule_set,))
        for i in range(count):
            conn.execute(
                "insert into public.quality_rules (rule_set_id, enterprise_id, field, kind, params,"
                " weight) values (%s, %s, 'email', 'pattern', %s, 1)",
                (rule_set, ENTERPRISE_ID, json.dumps({"regex": f"^g{i}"})),
            )


def test_an_admin_adding_the_eleventh_distinct_pattern_is_refused(
    conn: psycopg.Connection, admin: str
) -> None:
    rule_set = draft(conn)
    with as_role(conn, "authenticated", admin):
        one(conn, "select public.quality_rules_replace(%s, %s::jsonb)", rule_set, json.dumps([]))
        for i in range(10):
            add_rule(conn, rule_set, pattern_rule(f"^g{i}"))
        with pytest.raises(psycopg.errors.ProgramLimitExceeded, match=re.escape(TOO_MANY_PATTERNS)):
            add_rule(conn, rule_set, pattern_rule("^g10"))


def test_an_admin_changing_a_rule_into_an_expensive_one_is_refused(
    conn: psycopg.Connection, admin: str
) -> None:
    rule_set = draft(conn)
    with (
        as_role(conn, "authenticated", admin),
        pytest.raises(
            psycopg.errors.ProgramLimitExceeded, match=r"of size 300 at most \(this one: 400"
        ),
    ):
        conn.execute(
            "update public.quality_rules set kind = 'pattern', params = %s"
            " where rule_set_id = %s and field = 'email' and kind = 'email'",
            (json.dumps({"regex": "[a-z]{0,200}"}), rule_set),
        )


def test_replacing_a_drafts_rules_with_too_many_is_refused_whole(
    conn: psycopg.Connection, admin: str
) -> None:
    rule_set = draft(conn)
    rules = [{**r, "severity": "info"} for r in DEFAULTS] + [
        {"field": "title", "kind": "required", "weight": 1}
    ] * 37
    with (
        as_role(conn, "authenticated", admin),
        pytest.raises(
            psycopg.errors.ProgramLimitExceeded, match=re.escape("at most 50 rules (this one: 51)")
        ),
    ):
        one(conn, "select public.quality_rules_replace(%s, %s::jsonb)", rule_set, json.dumps(rules))
    assert rules_in(conn, rule_set) == len(DEFAULTS)


def test_a_set_saved_over_the_bounds_cannot_be_enabled(conn: psycopg.Connection) -> None:
    rule_set = draft(conn)
    save_unchecked(conn, rule_set, 11)
    version = one(conn, "select version from public.quality_rule_sets where id = %s", rule_set)
    with pytest.raises(
        psycopg.errors.ProgramLimitExceeded,
        match=re.escape(f"rule set version {version} cannot be enabled: {TOO_MANY_PATTERNS}"),
    ):
        conn.execute("select public.quality_enable_rule_set(%s, 0)", (rule_set,))
    assert one(conn, "select status from public.quality_rule_sets where id = %s", rule_set) == (
        "draft"
    )


def test_a_draft_copied_from_a_set_over_the_bounds_can_be_cut_down_and_enabled(
    conn: psycopg.Connection, admin: str
) -> None:
    old = draft(conn)
    save_unchecked(conn, old, 11)
    with conn.transaction():
        conn.execute("set local session_replication_role = replica")
        conn.execute(
            "update public.quality_rule_sets set status = case when id = %s then 'enabled'"
            " else 'retired' end where enterprise_id = %s and status in ('enabled', 'draft')",
            (old, ENTERPRISE_ID),
        )
    fresh = draft(conn)  # the owner copies the enabled set whole
    assert rules_in(conn, fresh) == rules_in(conn, old)
    with as_role(conn, "authenticated", admin):
        conn.execute(
            "delete from public.quality_rules where rule_set_id = %s and params->>'regex' = '^g10'",
            (fresh,),
        )
        enabled = one(conn, "select public.quality_enable_rule_set(%s, 0)", fresh)
    assert enabled["rule_set_id"] == fresh


def test_a_rules_file_over_a_bound_is_refused_offline_in_the_same_words() -> None:
    lines = [f"enterprise: {ENTERPRISE_ID}", "rules:"]
    for i in range(11):
        lines += ["  - field: email", "    kind: pattern", f"    params: {{regex: '^g{i}'}}"]
        lines += ["    weight: 1"]
    assert rules_file.problems("\n".join(lines), "hotel.yaml") == [
        f"hotel.yaml:2: rules: {TOO_MANY_PATTERNS}"
    ]


def test_a_list_of_thousands_of_rules_is_refused_before_any_is_checked(
    conn: psycopg.Connection, admin: str
) -> None:
    rule_set = draft(conn)
    rules = [pattern_rule(f"^g{i}[a-z]{{0,9}}$") for i in range(5000)]
    with (
        as_role(conn, "authenticated", admin),
        pytest.raises(
            psycopg.errors.ProgramLimitExceeded,
            match=re.escape("a rule set holds at most 50 rules (this one: 5000)"),
        ),
    ):
        one(conn, "select public.quality_rules_replace(%s, %s::jsonb)", rule_set, json.dumps(rules))
    assert rules_in(conn, rule_set) == len(DEFAULTS)
