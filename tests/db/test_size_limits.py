"""No text without a bound: every text, varchar, text array or jsonb column of every table in
public and app — a superset of what an API role may write, directly (column privileges) or
through a function that writes for it (a rule set's note) — has a check constraint that bounds
its size. Before, a `display_name`, an Integration's `Enterprise.Name` or a rule set's note of
5 MB was stored as sent."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from tests.support.rows import ENTERPRISE_ID
from tests.support.tenancy import add_user, as_role, seed_tenancy

# a check constraint bounds a column when it measures it (or lists the values it may take)
BOUNDING = ("char_length(", "octet_length(", "pg_column_size(", "cardinality(", "= ANY (ARRAY[")

TEXT_COLUMNS = """
select format('%I.%I', n.nspname, c.relname) as relation, a.attname::text as column_name,
       a.attnum, c.oid,
       exists (select 1 from unnest(array['authenticated', 'service_role']) r
               where has_column_privilege(r, c.oid, a.attnum, 'INSERT')
                  or has_column_privilege(r, c.oid, a.attnum, 'UPDATE')) as api_writable
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
join pg_type t on t.oid = a.atttypid
where n.nspname in ('public', 'app') and c.relkind in ('r', 'p')
  and (t.typname in ('text', 'varchar', 'bpchar', 'json', 'jsonb', '_text', '_varchar', '_jsonb'))
  and a.attgenerated = ''
order by 1, 2
"""

BOUNDS = """
select pg_get_constraintdef(k.oid)
from pg_constraint k
where k.conrelid = %s and k.contype = 'c' and %s = any (k.conkey)
"""


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        seed_tenancy(conn)
        yield conn


def text_columns(conn: psycopg.Connection) -> list[tuple[str, str, bool, list[str]]]:
    """Each text-like column: (relation, column, writable by an API role, its checks)."""
    found = []
    for relation, column, attnum, oid, writable in conn.execute(TEXT_COLUMNS).fetchall():
        checks = [d for (d,) in conn.execute(BOUNDS, (oid, attnum)).fetchall()]
        found.append((relation, column, writable, checks))
    return found


def test_the_catalogue_lists_what_the_audit_found_unbounded(conn: psycopg.Connection) -> None:
    """The list is derived, not written down: it holds the columns the audit wrote 5 MB into."""
    columns = {(r, c): w for r, c, w, _ in text_columns(conn)}
    assert columns[("public.app_users", "display_name")] is True
    assert columns[("public.connections", "enterprise_name")] is True
    assert columns[("public.event_inbox", "body_raw")] is True
    assert ("public.quality_rule_sets", "note") in columns  # written through a function
    assert sum(columns.values()) > 50


def test_every_text_column_has_a_size_bound(conn: psycopg.Connection) -> None:
    unbounded = [
        f"{relation}.{column}"
        for relation, column, _, checks in text_columns(conn)
        if not any(marker in check and column in check for check in checks for marker in BOUNDING)
    ]
    assert unbounded == []


def test_staff_get_a_clear_refusal_for_a_huge_display_name(conn: psycopg.Connection) -> None:
    staff = add_user(conn, enterprise_id=ENTERPRISE_ID)
    with (
        pytest.raises(psycopg.errors.CheckViolation, match="app_users_display_name_max_200_chars"),
        as_role(conn, "authenticated", staff),
    ):
        conn.execute("update public.app_users set display_name = repeat('x', 5000000)")
    with as_role(conn, "authenticated", staff):
        conn.execute("update public.app_users set display_name = 'Jana Nováková'")


def test_an_admin_gets_a_clear_refusal_for_a_huge_rule_set_note(conn: psycopg.Connection) -> None:
    admin = add_user(conn, enterprise_id=ENTERPRISE_ID, role="admin")
    with (
        pytest.raises(
            psycopg.errors.CheckViolation, match="quality_rule_sets_note_max_10000_chars"
        ),
        as_role(conn, "authenticated", admin),
    ):
        conn.execute(
            "select public.quality_draft_rule_set(%s, repeat('x', 5000000))", (ENTERPRISE_ID,)
        )
