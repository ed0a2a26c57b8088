"""Row-level security of scores, gaps and rules: staff read their enterprise's only; only that
enterprise's admins change rules; rules are checked where they are written."""

from __future__ import annotations

import json
from collections.abc import Iterator

import psycopg
import pytest

from shared.quality.rules import DEFAULT_RULES
from tests.quality.conftest import enable_rules, insert_profile
from tests.support.rows import CHAIN_ID, ENTERPRISE_ID, OTHER_CHAIN_ID, OTHER_ENTERPRISE_ID
from tests.support.tenancy import add_user, as_role, seed_tenancy


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        seed_tenancy(conn)
        for enterprise, chain in ((ENTERPRISE_ID, CHAIN_ID), (OTHER_ENTERPRISE_ID, OTHER_CHAIN_ID)):
            enable_rules(conn, enterprise, [r.model_dump() for r in DEFAULT_RULES])
            for name in ("A", "B"):
                insert_profile(conn, {"last_name": name}, chain_id=chain)
            conn.execute("select public.quality_rescore(%s)", (enterprise,))
            conn.execute("select public.quality_snapshot(%s)", (enterprise,))
        yield conn


def visible(
    conn: psycopg.Connection, user: str | None, sql: str, role: str = "authenticated"
) -> set[str]:
    with as_role(conn, role, user):
        return {str(r[0]) for r in conn.execute(sql).fetchall()}


@pytest.mark.parametrize(
    "source",
    [
        "guest_scores",
        "quality_guest_gaps",
        "quality_field_gaps",
        "quality_worst_profiles",
        "quality_daily",
        "quality_rule_sets",
        "quality_rules",
    ],
)
def test_staff_read_their_enterprise_only(conn: psycopg.Connection, source: str) -> None:
    staff = add_user(conn, enterprise_id=ENTERPRISE_ID, role="staff")
    assert visible(conn, staff, f"select enterprise_id from public.{source}") == {ENTERPRISE_ID}


def test_anon_reads_no_scores_and_calls_no_report(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege), as_role(conn, "anon"):
        conn.execute("select public.quality_report(%s)", (ENTERPRISE_ID,))


def test_the_report_shows_a_staff_member_only_their_enterprise(conn: psycopg.Connection) -> None:
    staff = add_user(conn, enterprise_id=ENTERPRISE_ID, role="staff")
    with as_role(conn, "authenticated", staff):
        mine = conn.execute("select public.quality_report(%s)", (ENTERPRISE_ID,)).fetchone()[0]  # type: ignore[index]
        theirs = conn.execute(
            "select public.quality_report(%s)", (OTHER_ENTERPRISE_ID,)
        ).fetchone()[0]  # type: ignore[index]
    assert mine["guests"] == 2
    assert theirs["guests"] == 0
    assert theirs["worst"] == []


def test_only_admins_of_the_enterprise_change_rules(conn: psycopg.Connection) -> None:
    staff = add_user(conn, enterprise_id=ENTERPRISE_ID, role="staff")
    admin = add_user(conn, enterprise_id=ENTERPRISE_ID, role="admin")
    other_admin = add_user(conn, enterprise_id=OTHER_ENTERPRISE_ID, role="admin")
    for user in (staff, other_admin):
        with (
            pytest.raises(psycopg.errors.InsufficientPrivilege),
            as_role(conn, "authenticated", user),
        ):
            conn.execute("select public.quality_draft_rule_set(%s)", (ENTERPRISE_ID,))
    with as_role(conn, "authenticated", admin):
        draft = conn.execute(
            "select public.quality_draft_rule_set(%s)", (ENTERPRISE_ID,)
        ).fetchone()[0]["id"]  # type: ignore[index]
        conn.execute(
            "update public.quality_rules set weight = 40 where rule_set_id = %s and field = 'phone' and kind = 'required'",
            (draft,),
        )
        conn.execute(
            "insert into public.quality_rules (rule_set_id, field, kind, params, weight)"
            " values (%s, 'title', 'allowed_values', %s, 3)",
            (draft, json.dumps({"values": ["Mister"]})),
        )
        dry = conn.execute("select public.quality_dry_run(%s)", (draft,)).fetchone()[0]  # type: ignore[index]
        assert dry["guests"] == 2
        enabled = conn.execute("select public.quality_enable_rule_set(%s)", (draft,)).fetchone()[0]  # type: ignore[index]
        assert enabled["scored"] == 2
        # an enabled set is frozen, even for its admin
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="create a new version"):
            conn.execute(
                "update public.quality_rules set weight = 1 where rule_set_id = %s", (draft,)
            )
    # staff edits to rules change no row
    with as_role(conn, "authenticated", staff):
        updated = conn.execute(
            "update public.quality_rules set weight = 1 where enterprise_id = %s", (ENTERPRISE_ID,)
        )
        assert updated.rowcount == 0
    # the other enterprise's admin cannot touch them
    with as_role(conn, "authenticated", other_admin):
        assert (
            conn.execute(
                "delete from public.quality_rules where enterprise_id = %s", (ENTERPRISE_ID,)
            ).rowcount
            == 0
        )


@pytest.mark.parametrize(
    ("field", "kind", "params", "message"),
    [
        ("shoe_size", "required", {}, "unknown field"),
        ("email", "pattern", {"regex": "(a+)+$"}, "nested quantifiers"),
        ("email", "pattern", {"regex": "x" * 201}, "longer than 200 characters"),
        ("email", "pattern", {"regex": "[a-"}, "unterminated bracket expression"),
        ("phone", "email", {}, "applies to the email field"),
        ("birth_date", "length", {"max": 2}, "text fields"),
    ],
)
def test_bad_rules_are_refused_where_they_are_written(
    conn: psycopg.Connection, field: str, kind: str, params: dict[str, object], message: str
) -> None:
    admin = add_user(conn, enterprise_id=ENTERPRISE_ID, role="admin")
    with as_role(conn, "authenticated", admin):
        draft = conn.execute(
            "select public.quality_draft_rule_set(%s)", (ENTERPRISE_ID,)
        ).fetchone()[0]["id"]  # type: ignore[index]
        with pytest.raises(psycopg.Error, match=message):
            conn.execute(
                "insert into public.quality_rules (rule_set_id, field, kind, params, weight)"
                " values (%s, %s, %s, %s, 5)",
                (draft, field, kind, json.dumps(params)),
            )
