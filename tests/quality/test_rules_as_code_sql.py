"""The functions behind `guesthub rules`: a draft's rules replaced as one list under the caller's
row-level security, checked entry by entry in the same words as the YAML loader."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from shared.quality.rules import DEFAULT_RULES
from shared.quality.rules_file import entry_of, entry_problem
from tests.quality.conftest import enable_rules
from tests.support.rows import ENTERPRISE_ID, OTHER_ENTERPRISE_ID
from tests.support.tenancy import add_user, as_role, seed_tenancy

NEW_RULES = [
    {"field": "phone", "kind": "required", "params": {}, "severity": "error", "weight": 40},
    {
        "field": "title",
        "kind": "allowed_values",
        "params": {"values": ["Mister", "Miss"]},
        "severity": "info",
        "weight": 3,
    },
]


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        seed_tenancy(conn)
        for enterprise in (ENTERPRISE_ID, OTHER_ENTERPRISE_ID):
            enable_rules(conn, enterprise, [r.model_dump() for r in DEFAULT_RULES])
        yield conn


def one(conn: psycopg.Connection, sql: str, *params: Any) -> Any:
    row = conn.execute(sql, params).fetchone()
    assert row is not None
    return row[0]


def draft_of(conn: psycopg.Connection, enterprise: str) -> str:
    """A draft made by the service (committed), for tests that act as users on it."""
    return str(one(conn, "select public.quality_draft_rule_set(%s)", enterprise)["id"])


def replace(conn: psycopg.Connection, draft: str, rules: list[Any]) -> Any:
    return one(conn, "select public.quality_rules_replace(%s, %s::jsonb)", draft, json.dumps(rules))


def test_an_admin_replaces_the_rules_of_their_draft_in_order(conn: psycopg.Connection) -> None:
    admin = add_user(conn, enterprise_id=ENTERPRISE_ID, role="admin")
    draft = draft_of(conn, ENTERPRISE_ID)
    with as_role(conn, "authenticated", admin):
        assert replace(conn, draft, NEW_RULES) == {"rule_set_id": draft, "rules": 2}
        written = one(conn, "select public.quality_rules_of(%s)", draft)
    assert written["rules"] == NEW_RULES
    assert written["status"] == "draft"


@pytest.mark.parametrize("who", ["staff", "other_admin"])
def test_staff_and_other_enterprises_admins_cannot_replace_rules(
    conn: psycopg.Connection, who: str
) -> None:
    user = (
        add_user(conn, enterprise_id=ENTERPRISE_ID, role="staff")
        if who == "staff"
        else add_user(conn, enterprise_id=OTHER_ENTERPRISE_ID, role="admin")
    )
    draft = draft_of(conn, ENTERPRISE_ID)
    with pytest.raises(psycopg.Error), as_role(conn, "authenticated", user):
        replace(conn, draft, NEW_RULES)
    assert len(one(conn, "select public.quality_rules_of(%s)", draft)["rules"]) == len(
        DEFAULT_RULES
    )


def test_staff_replacing_with_nothing_is_refused_too(conn: psycopg.Connection) -> None:
    staff = add_user(conn, enterprise_id=ENTERPRISE_ID, role="staff")
    draft = draft_of(conn, ENTERPRISE_ID)
    with (
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="only admins"),
        as_role(conn, "authenticated", staff),
    ):
        replace(conn, draft, [])


def test_the_rules_of_an_enabled_set_cannot_be_replaced(conn: psycopg.Connection) -> None:
    enabled = one(
        conn,
        "select id from public.quality_rule_sets where status = 'enabled' and enterprise_id = %s",
        ENTERPRISE_ID,
    )
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="only the rules of a draft"):
        replace(conn, str(enabled), NEW_RULES)


def test_a_bad_entry_is_refused_by_position_and_nothing_changes(conn: psycopg.Connection) -> None:
    draft = draft_of(conn, ENTERPRISE_ID)
    bad = [*NEW_RULES, {"field": "email", "kind": "email", "wieght": 3}]
    with pytest.raises(psycopg.errors.InvalidParameterValue) as refused:
        replace(conn, draft, bad)
    assert refused.value.diag.message_primary == (
        "rule 3: email rule on email: unknown key wieght (keys: field, kind, params, severity, weight)"
    )
    assert len(one(conn, "select public.quality_rules_of(%s)", draft)["rules"]) == len(
        DEFAULT_RULES
    )


def test_the_service_replaces_rules_too(conn: psycopg.Connection) -> None:
    draft = draft_of(conn, ENTERPRISE_ID)
    with as_role(conn, "service_role"):
        assert replace(conn, draft, [entry_of(r) for r in DEFAULT_RULES[:3]])["rules"] == 3


def test_staff_list_and_read_their_enterprises_rule_sets_only(conn: psycopg.Connection) -> None:
    staff = add_user(conn, enterprise_id=ENTERPRISE_ID, role="staff")
    other_set = one(
        conn,
        "select id from public.quality_rule_sets where enterprise_id = %s",
        OTHER_ENTERPRISE_ID,
    )
    with as_role(conn, "authenticated", staff):
        mine = one(conn, "select public.quality_rule_sets_list(%s)", ENTERPRISE_ID)
        theirs = one(conn, "select public.quality_rule_sets_list(%s)", OTHER_ENTERPRISE_ID)
        hidden = one(conn, "select public.quality_rules_of(%s)", other_set)
    assert [(s["version"], s["status"], s["rules"]) for s in mine] == [
        (1, "enabled", len(DEFAULT_RULES))
    ]
    assert (theirs, hidden) == ([], None)


def test_anon_calls_none_of_the_rules_functions(conn: psycopg.Connection) -> None:
    for sql in (
        "select public.quality_rule_sets_list(%s)",
        "select public.quality_rules_of(%s)",
        "select public.quality_rules_replace(%s, '[]'::jsonb)",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege), as_role(conn, "anon"):
            conn.execute(sql, (ENTERPRISE_ID,))


ENTRIES: list[Any] = [
    {"field": "phone", "kind": "required", "weight": 15},
    {"field": "phone", "kind": "required", "weight": 15, "severity": "error", "params": {}},
    "phone",
    [],
    None,
    {"field": "email", "kind": "email", "wieght": 3},
    {"kind": "required", "weight": 3},
    {"field": "phone", "kind": "required"},
    {"field": "phone", "kind": "required", "weight": None},
    {"field": 5, "kind": "required", "weight": 3},
    {"field": "phone", "kind": "required", "weight": 101},
    {"field": "phone", "kind": "required", "weight": -1},
    {"field": "phone", "kind": "required", "weight": 2.5},
    {"field": "phone", "kind": "required", "weight": True},
    {"field": "phone", "kind": "required", "weight": "3"},
    {"field": "phone", "kind": "required", "weight": 3, "severity": "fatal"},
    {"field": "phone", "kind": "required", "weight": 3, "severity": None},
    {"field": "phone", "kind": "required", "weight": 3, "params": None},
    {"field": "phone", "kind": "required", "weight": 3, "params": {"x": 1}},
    {"field": "first_name", "kind": "length", "weight": 3, "params": {"min": 5, "max": 2}},
    {"field": "shoe_size", "kind": "required", "weight": 3},
    {"field": "email", "kind": "fancy", "weight": 3},
    {"field": "phone", "kind": "required", "weight": 3, "Weight": 3, "zeta": 1},
]


@pytest.mark.parametrize("entry", ENTRIES)
def test_python_and_sql_say_the_same_of_a_rule_entry(conn: psycopg.Connection, entry: Any) -> None:
    in_sql = one(conn, "select app.quality_rule_entry_problem(%s::jsonb)", json.dumps(entry))
    assert entry_problem(entry) == in_sql


# the duplicate threshold, a rule like the others


def threshold_of(conn: psycopg.Connection, enterprise: str) -> Any:
    row = conn.execute(
        "select threshold from public.duplicate_settings where enterprise_id = %s", (enterprise,)
    ).fetchone()
    return None if row is None else round(row[0], 3)


def set_threshold(conn: psycopg.Connection, draft: str, threshold: float | None) -> Any:
    return one(conn, "select public.quality_rule_set_duplicate_threshold(%s, %s)", draft, threshold)


def test_a_drafts_duplicate_threshold_becomes_the_enterprises_when_enabled(
    conn: psycopg.Connection,
) -> None:
    admin = add_user(conn, enterprise_id=ENTERPRISE_ID, role="admin")
    draft = draft_of(conn, ENTERPRISE_ID)
    with as_role(conn, "authenticated", admin):  # an admin, in one request (rolled back)
        set_threshold(conn, draft, 0.92)
        assert threshold_of(conn, ENTERPRISE_ID) is None  # a draft changes nothing yet
        one(conn, "select public.quality_enable_rule_set(%s)", draft)
        assert threshold_of(conn, ENTERPRISE_ID) == 0.92
    # the same, kept: a draft's threshold, then enabled
    set_threshold(conn, draft, 0.92)
    of_draft = one(conn, "select public.quality_rules_of(%s)", draft)["duplicate_threshold"]
    assert round(of_draft, 3) == 0.92
    one(conn, "select public.quality_enable_rule_set(%s)", draft)
    assert threshold_of(conn, ENTERPRISE_ID) == 0.92
    assert threshold_of(conn, OTHER_ENTERPRISE_ID) is None
    # a later set without one leaves it as it is
    later = draft_of(conn, ENTERPRISE_ID)
    one(conn, "select public.quality_enable_rule_set(%s)", later)
    assert threshold_of(conn, ENTERPRISE_ID) == 0.92
    # the enabled set says the threshold in force, changed since by an admin
    conn.execute(
        "update public.duplicate_settings set threshold = 0.95 where enterprise_id = %s",
        (ENTERPRISE_ID,),
    )
    in_force = one(conn, "select public.quality_rules_of(%s)", later)["duplicate_threshold"]
    assert round(in_force, 3) == 0.95


@pytest.mark.parametrize("who", ["staff", "other_admin"])
def test_staff_and_other_enterprises_admins_cannot_set_the_duplicate_threshold(
    conn: psycopg.Connection, who: str
) -> None:
    user = (
        add_user(conn, enterprise_id=ENTERPRISE_ID, role="staff")
        if who == "staff"
        else add_user(conn, enterprise_id=OTHER_ENTERPRISE_ID, role="admin")
    )
    draft = draft_of(conn, ENTERPRISE_ID)
    with (
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="only admins"),
        as_role(conn, "authenticated", user),
    ):
        set_threshold(conn, draft, 0.6)
    assert one(conn, "select public.quality_rules_of(%s)", draft)["duplicate_threshold"] is None


def test_a_duplicate_threshold_out_of_range_or_on_an_enabled_set_is_refused(
    conn: psycopg.Connection,
) -> None:
    draft = draft_of(conn, ENTERPRISE_ID)
    for bad in (0.3, 1.0):
        with pytest.raises(
            psycopg.errors.InvalidParameterValue, match=r"at least 0\.5 and below 1"
        ):
            set_threshold(conn, draft, bad)
    enabled = one(
        conn,
        "select id from public.quality_rule_sets where status = 'enabled' and enterprise_id = %s",
        ENTERPRISE_ID,
    )
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="only a draft"):
        set_threshold(conn, str(enabled), 0.8)
