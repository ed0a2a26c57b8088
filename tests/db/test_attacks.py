"""Attacks on the permission model, as a staff member or admin of one hotel (or anyone holding
only the anon key) would try them through PostgREST: `set local role`, the JWT claims, the role's
statement timeout. Each was possible before the least-privilege migrations."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from shared.quality.rules import DEFAULT_RULES
from tests.quality.conftest import enable_rules, insert_profile
from tests.support.rows import CHAIN_ID, ENTERPRISE_ID, OTHER_CHAIN_ID, OTHER_ENTERPRISE_ID
from tests.support.tenancy import add_user, as_role, seed_tenancy

Denied = psycopg.errors.InsufficientPrivilege


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    """Two hotels of two chains, each with guests, default rules and scores."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        seed_tenancy(conn)
        for enterprise, chain in ((ENTERPRISE_ID, CHAIN_ID), (OTHER_ENTERPRISE_ID, OTHER_CHAIN_ID)):
            enable_rules(conn, enterprise, [r.model_dump() for r in DEFAULT_RULES])
            for name in ("Alpha", "Beta", "Gamma"):
                insert_profile(conn, {"last_name": name, "email": "a@b.example"}, chain_id=chain)
            conn.execute("select public.quality_rescore(%s)", (enterprise,))
        yield conn


def scalar(conn: psycopg.Connection, sql: str, params: Any = None) -> Any:
    row = conn.execute(sql, params).fetchone()
    return row[0] if row else None


def public_tables(conn: psycopg.Connection) -> list[str]:
    return [
        t
        for (t,) in conn.execute(
            "select tablename from pg_tables where schemaname = 'public' order by 1"
        ).fetchall()
    ]


# --- the critical hole: an admin of A had SQL of their own executed with the functions' rights


def test_an_admin_cannot_write_rule_sets_or_the_scoring_sql(conn: psycopg.Connection) -> None:
    admin = add_user(conn, enterprise_id=ENTERPRISE_ID, role="admin")
    enabled = scalar(
        conn, "select id from public.quality_rule_sets where enterprise_id = %s", (ENTERPRISE_ID,)
    )
    attempts = [
        ("update public.quality_rule_sets set status = 'draft' where id = %s", (enabled,)),
        ("update public.quality_rule_sets set note = 'x' where id = %s", (enabled,)),
        ("delete from public.quality_rule_sets where id = %s", (enabled,)),
        (
            "insert into public.quality_rule_sets (enterprise_id, version, status) values (%s, 99, 'enabled')",
            (ENTERPRISE_ID,),
        ),
        ("select sql from app.quality_compiled", None),
        ("update app.quality_compiled set sql = 'select 1'", None),
        ("insert into app.quality_compiled (rule_set_id, sql) values (%s, 'select 1')", (enabled,)),
        ("select app.quality_freeze(%s)", (enabled,)),
    ]
    for sql, params in attempts:
        with pytest.raises(Denied), as_role(conn, "authenticated", admin):
            conn.execute(sql, params)


def test_the_service_role_cannot_write_the_scoring_sql_either(conn: psycopg.Connection) -> None:
    enabled = scalar(
        conn, "select id from public.quality_rule_sets where enterprise_id = %s", (ENTERPRISE_ID,)
    )
    for sql in (
        "update app.quality_compiled set sql = 'select 1'",
        "update public.quality_rule_sets set status = 'retired'",
    ):
        with pytest.raises(Denied), as_role(conn, "service_role"):
            conn.execute(sql)
    with pytest.raises(Denied, match="create a new version"), as_role(conn, "service_role"):
        conn.execute(
            "update public.quality_rules set weight = 1 where rule_set_id = %s", (enabled,)
        )


def test_rescoring_runs_only_sql_generated_from_validated_rules(conn: psycopg.Connection) -> None:
    """An admin's values reach the scoring SQL only as quoted literals: a value crafted to break
    out of the literal scores as a value, and the attacker gains nothing."""
    admin = add_user(conn, enterprise_id=ENTERPRISE_ID, role="admin")
    payload = (
        "x'); insert into public.memberships (user_id, enterprise_id, role) values (auth.uid(), '"
        + OTHER_ENTERPRISE_ID
        + "', 'admin'); --"
    )
    with as_role(conn, "authenticated", admin):
        draft = scalar(conn, "select public.quality_draft_rule_set(%s)", (ENTERPRISE_ID,))["id"]
        conn.execute(
            "insert into public.quality_rules (rule_set_id, field, kind, params, weight)"
            " values (%s, 'last_name', 'allowed_values', %s, 5)",
            (draft, json.dumps({"values": [payload[:100]]})),
        )
        result = scalar(conn, "select public.quality_enable_rule_set(%s)", (draft,))
        visible = scalar(
            conn, "select count(*) from public.guests where chain_id = %s", (OTHER_CHAIN_ID,)
        )
        memberships = scalar(
            conn, "select count(*) from public.memberships where user_id = %s", (admin,)
        )
    assert (result["scored"], visible, memberships) == (3, 0, 1)


def test_an_admin_cannot_move_or_touch_rules_of_an_enabled_set(conn: psycopg.Connection) -> None:
    admin = add_user(conn, enterprise_id=ENTERPRISE_ID, role="admin")
    enabled = scalar(
        conn, "select id from public.quality_rule_sets where enterprise_id = %s", (ENTERPRISE_ID,)
    )
    with as_role(conn, "authenticated", admin):
        draft = scalar(conn, "select public.quality_draft_rule_set(%s)", (ENTERPRISE_ID,))["id"]
    for sql, params, error in (
        (
            "update public.quality_rules set rule_set_id = %s where rule_set_id = %s",
            (draft, enabled),
            Denied,
        ),
        ("update public.quality_rules set cost = 0 where rule_set_id = %s", (enabled,), Denied),
        (
            "update public.quality_rules set message = 'x' where rule_set_id = %s",
            (enabled,),
            Denied,
        ),
        ("delete from public.quality_rules where rule_set_id = %s", (enabled,), Denied),
        (
            "insert into public.quality_rules (rule_set_id, field, kind, weight) values (%s, 'title', 'required', 5)",
            (enabled,),
            Denied,
        ),
    ):
        with pytest.raises(error), as_role(conn, "authenticated", admin):
            conn.execute(sql, params)


def test_an_admin_cannot_write_rules_into_another_hotels_draft(conn: psycopg.Connection) -> None:
    admin_a = add_user(conn, enterprise_id=ENTERPRISE_ID, role="admin")
    draft_b = scalar(
        conn,
        "insert into public.quality_rule_sets (enterprise_id, version) values (%s, 50) returning id",
        (OTHER_ENTERPRISE_ID,),
    )
    with pytest.raises(Denied), as_role(conn, "authenticated", admin_a):
        conn.execute(
            "insert into public.quality_rules (rule_set_id, field, kind, weight) values (%s, 'title', 'required', 5)",
            (draft_b,),
        )
    for fn in ("quality_dry_run", "quality_enable_rule_set", "quality_discard_draft"):
        with pytest.raises(Denied), as_role(conn, "authenticated", admin_a):
            conn.execute(f"select public.{fn}(%s)", (draft_b,))


# --- Supabase's default grants: anon and staff held every table privilege


@pytest.mark.parametrize("role", ["anon", "authenticated"])
def test_no_api_role_can_truncate_any_table(conn: psycopg.Connection, role: str) -> None:
    staff = add_user(conn, enterprise_id=ENTERPRISE_ID)
    for table in public_tables(conn):
        with pytest.raises(Denied), as_role(conn, role, staff if role == "authenticated" else None):
            conn.execute(
                psycopg.sql.SQL("truncate public.{}").format(psycopg.sql.Identifier(table))
            )


def test_anon_can_neither_read_nor_write_any_table(conn: psycopg.Connection) -> None:
    for table in public_tables(conn):
        for sql in ("select 1 from public.{} limit 1", "delete from public.{}"):
            with pytest.raises(Denied), as_role(conn, "anon", claims={"role": "anon"}):
                conn.execute(psycopg.sql.SQL(sql).format(psycopg.sql.Identifier(table)))


def sync_owned_guest_columns(conn: psycopg.Connection) -> list[str]:
    editable = set(
        scalar(
            conn,
            "select array_agg(column_name::text) from information_schema.column_privileges"
            " where table_schema = 'public' and table_name = 'guests' and grantee = 'authenticated'"
            " and privilege_type = 'UPDATE'",
        )
    )
    columns = [
        c
        for (c,) in conn.execute(
            "select attname from pg_attribute where attrelid = 'public.guests'::regclass"
            " and attnum > 0 and not attisdropped order by attnum"
        ).fetchall()
    ]
    return [c for c in columns if c not in editable]


def test_staff_cannot_forge_what_the_sync_owns(conn: psycopg.Connection) -> None:
    """mews_updated_utc (freeze a row), raw, push_status, local_changes (forge a push) ..."""
    staff = add_user(conn, enterprise_id=ENTERPRISE_ID)
    columns = sync_owned_guest_columns(conn)
    assert {
        "mews_updated_utc",
        "raw",
        "raw_hash",
        "push_status",
        "local_changes",
        "chain_id",
    } <= set(columns)
    for column in columns:
        with pytest.raises(Denied), as_role(conn, "authenticated", staff):
            conn.execute(
                psycopg.sql.SQL("update public.guests set {0} = {0}").format(
                    psycopg.sql.Identifier(column)
                )
            )


def test_staff_edits_of_editable_columns_still_work_and_are_marked(
    conn: psycopg.Connection,
) -> None:
    staff = add_user(conn, enterprise_id=ENTERPRISE_ID)
    with as_role(conn, "authenticated", staff):
        changed = conn.execute(
            "update public.guests set email = 'new@hotel.example' returning push_status, local_changes->>'email'"
        ).fetchall()
        other_chain = conn.execute(
            "update public.guests set email = 'x@y.example' where chain_id = %s returning 1",
            (OTHER_CHAIN_ID,),
        ).fetchall()
    assert changed == [("pending", "new@hotel.example")] * 3
    assert other_chain == []


def test_staff_cannot_read_the_inbox_the_budget_or_a_token(conn: psycopg.Connection) -> None:
    staff = add_user(conn, enterprise_id=ENTERPRISE_ID)
    for sql in (
        "select body_raw from public.event_inbox",
        "select key from public.rate_limit_state",
        "select access_token_encrypted from public.connections",
        "select * from public.connections",
    ):
        with pytest.raises(Denied), as_role(conn, "authenticated", staff):
            conn.execute(sql)


# --- checks that trusted missing claims


@pytest.mark.parametrize(
    ("name", "claims", "settings"),
    [
        ("no claims at all", {}, {}),
        ("a forged service_role claim", {"role": "service_role"}, {}),
        ("old-style claims only", {}, {"request.jwt.claim.role": "service_role"}),
        ("a user of another hotel", None, {}),
    ],
)
def test_admin_checks_fail_closed(
    conn: psycopg.Connection, name: str, claims: dict[str, Any] | None, settings: dict[str, str]
) -> None:
    """Only a membership of the JWT's user makes an admin; nothing else, for anybody."""
    outsider = add_user(conn, enterprise_id=OTHER_ENTERPRISE_ID, role="admin")
    if claims is None:
        claims = {"role": "authenticated", "sub": outsider}
    enabled = scalar(
        conn, "select id from public.quality_rule_sets where enterprise_id = %s", (ENTERPRISE_ID,)
    )
    for sql, params in (
        ("select public.quality_draft_rule_set(%s)", (ENTERPRISE_ID,)),
        ("select public.quality_dry_run(%s)", (enabled,)),
        ("select public.quality_discard_draft(%s)", (enabled,)),
    ):
        with as_role(conn, "authenticated", claims=claims):
            for key, value in settings.items():
                conn.execute("select set_config(%s, %s, true)", (key, value))
            with pytest.raises(Denied):
                conn.execute(sql, params)


def test_the_service_and_the_owner_are_trusted_without_a_jwt(conn: psycopg.Connection) -> None:
    with as_role(conn, "service_role", claims={}):
        draft = scalar(conn, "select public.quality_draft_rule_set(%s)", (ENTERPRISE_ID,))
    owner = scalar(conn, "select public.quality_draft_rule_set(%s)", (ENTERPRISE_ID,))
    assert draft["version"] == owner["version"] == 2


def test_only_the_service_installs_default_rules(conn: psycopg.Connection) -> None:
    admin = add_user(conn, enterprise_id=ENTERPRISE_ID, role="admin")
    with pytest.raises(Denied), as_role(conn, "authenticated", admin):
        conn.execute("select public.quality_ensure_rule_set(%s, '[]'::jsonb)", (ENTERPRISE_ID,))


# --- admin rules that never failed, or stalled the database


def rule_error(conn: psycopg.Connection, field: str, kind: str, params: Any) -> str:
    admin = add_user(conn, enterprise_id=ENTERPRISE_ID, role="admin")
    with as_role(conn, "authenticated", admin):
        draft = scalar(conn, "select public.quality_draft_rule_set(%s)", (ENTERPRISE_ID,))["id"]
        with pytest.raises(psycopg.errors.InvalidParameterValue) as refused:
            conn.execute(
                "insert into public.quality_rules (rule_set_id, field, kind, params, weight)"
                " values (%s, %s, %s, %s, 5)",
                (draft, field, kind, json.dumps(params)),
            )
    return refused.value.diag.message_primary or ""


@pytest.mark.parametrize(
    ("field", "kind", "params", "message"),
    [
        (
            "last_name",
            "pattern",
            {"regex": "((a+))+$"},
            "pattern rule on last_name: parameter regex: nested quantifiers",
        ),
        (
            "last_name",
            "pattern",
            {"regex": "(([a-z]*)){1,255}b"},
            "pattern rule on last_name: parameter regex: nested quantifiers",
        ),
        (
            "last_name",
            "pattern",
            {"pattern": "^A"},
            "pattern rule on last_name: unknown parameter pattern (allowed: regex)",
        ),
        ("last_name", "pattern", {}, "pattern rule on last_name: parameter regex is required"),
        (
            "last_name",
            "length",
            {"min": 5, "max": 2},
            "length rule on last_name: min (5) is greater than max (2)",
        ),
        (
            "last_name",
            "length",
            {"min": "5"},
            "length rule on last_name: parameter min must be a whole number from 0 to 1000",
        ),
        ("last_name", "length", {}, "length rule on last_name: parameter min or max is required"),
        (
            "birth_date",
            "date_range",
            {"min_years_ago": 90, "max_years_ago": 10},
            "date_range rule on birth_date: min_years_ago (90) is greater than max_years_ago (10)",
        ),
        (
            "title",
            "allowed_values",
            {"values": ["x" * 101]},
            "allowed_values rule on title: parameter values: each value is a text of 1 to 100 characters",
        ),
        (
            "title",
            "allowed_values",
            {"values": ["v"] * 201},
            "allowed_values rule on title: parameter values must be a list of 1 to 200 texts",
        ),
        (
            "email",
            "email",
            {"strict": True},
            "email rule on email: unknown parameter strict (email takes no parameters)",
        ),
    ],
)
def test_bad_rules_are_refused_naming_the_rule_and_the_parameter(
    conn: psycopg.Connection, field: str, kind: str, params: Any, message: str
) -> None:
    assert rule_error(conn, field, kind, params).startswith(message)


def test_a_huge_allowed_values_list_is_refused_before_it_can_slow_a_dry_run(
    conn: psycopg.Connection,
) -> None:
    """500 values × 100 KB took a dry run 35 s for one guest; it is now refused at the door."""
    message = rule_error(conn, "title", "allowed_values", {"values": ["v" * 100_000] * 500})
    assert message.startswith("allowed_values rule on title: parameter values must be a list")


# --- duplicate decisions: staff of one hotel decide on its chain's pairs only


def test_a_login_of_another_hotel_cannot_decide_on_or_merge_a_chains_guests(
    conn: psycopg.Connection,
) -> None:
    """Staff and admins of hotel B (another chain) try what PostgREST would let them try on the
    pairs of hotel A: the function, the tables directly, the push's functions, forged claims."""
    a, b = sorted(
        str(g)
        for (g,) in conn.execute(
            "select mews_id from public.guests where chain_id = %s limit 2", (CHAIN_ID,)
        ).fetchall()
    )
    owner_decision = scalar(
        conn,
        "select public.duplicate_decide(%s, %s, %s, 'same', %s)",
        (CHAIN_ID, a, b, a),
    )
    assert owner_decision["merge_status"] == "pending"
    decide = "select public.duplicate_decide(%s, %s, %s, %s, %s)"
    for role in ("staff", "admin"):
        outsider = add_user(conn, enterprise_id=OTHER_ENTERPRISE_ID, role=role)
        for sql, params in (
            (decide, (CHAIN_ID, a, b, "different", None)),
            (decide, (CHAIN_ID, a, b, "same", b)),
            (
                "insert into public.duplicate_decisions (chain_id, guest_a, guest_b, decision,"
                " fingerprint_a, fingerprint_b) values (%s, %s, %s, 'different', '', '')",
                (CHAIN_ID, a, b),
            ),
            ("update public.duplicate_decisions set merge_status = 'merged'", None),
            ("delete from public.duplicate_decisions", None),
            (
                "insert into public.duplicate_decision_log (chain_id, guest_a, guest_b, event)"
                " values (%s, %s, %s, 'merged')",
                (CHAIN_ID, a, b),
            ),
            ("select public.duplicate_merges_pending()", None),
            (
                "select public.duplicate_merge_record(%s, %s, %s, now(), 'merged')",
                (CHAIN_ID, a, b),
            ),
        ):
            with pytest.raises(Denied), as_role(conn, "authenticated", outsider):
                conn.execute(sql, params)
        with as_role(conn, "authenticated", outsider):
            seen = [
                scalar(conn, f"select count(*) from public.{table}")
                for table in ("duplicate_decisions", "duplicate_decision_log")
            ]
            suggestions = scalar(
                conn,
                "select count(*) from public.duplicate_suggestions where chain_id = %s",
                (CHAIN_ID,),
            )
        assert (seen, suggestions) == ([0, 0], 0)
    for claims in ({}, {"role": "service_role"}):  # no user, or a forged service claim
        with pytest.raises(Denied), as_role(conn, "authenticated", claims=claims):
            conn.execute(decide, (CHAIN_ID, a, b, "different", None))
    # the decision and its merge are as the hotel's staff left them
    state = conn.execute(
        "select decision, survivor::text, merge_status from public.duplicate_decisions"
    ).fetchall()
    assert state == [("same", a, "pending")]


def test_staff_decide_through_the_function_only(conn: psycopg.Connection) -> None:
    """Even for their own chain, staff cannot mark a merge done or rewrite the history."""
    staff = add_user(conn, enterprise_id=ENTERPRISE_ID)
    a, b = sorted(
        str(g)
        for (g,) in conn.execute(
            "select mews_id from public.guests where chain_id = %s limit 2", (CHAIN_ID,)
        ).fetchall()
    )
    with as_role(conn, "authenticated", staff):
        decided = scalar(
            conn, "select public.duplicate_decide(%s, %s, %s, 'same', %s)", (CHAIN_ID, a, b, b)
        )
        assert decided["decided_by"] == staff
    for sql in (
        "update public.duplicate_decisions set merge_status = 'merged'",
        "update public.duplicate_decisions set decided_by = null",
        "delete from public.duplicate_decision_log",
        "update public.duplicate_decision_log set actor = null",
    ):
        with pytest.raises(Denied), as_role(conn, "authenticated", staff):
            conn.execute(sql)
