"""Row-level security, checked as PostgREST applies it per request: `set local role` plus the
JWT claims. Supabase's default grants are in place (the bootstrap reproduces them), so only RLS
and explicit revokes stand between a role and the rows."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from shared.db.migrations import discover
from tests.support.rows import (
    CHAIN_ID,
    ENTERPRISE_ID,
    OTHER_CHAIN_ID,
    OTHER_ENTERPRISE_ID,
    guest_row,
    store_guests,
)
from tests.support.tenancy import add_user, as_role, seed_tenancy


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        seed_tenancy(conn)
        for chain in (CHAIN_ID, OTHER_CHAIN_ID):
            rows = [guest_row(chain_id=chain) for _ in range(3)]
            store_guests(conn, rows)
        for enterprise in (ENTERPRISE_ID, OTHER_ENTERPRISE_ID):
            conn.execute(
                "insert into public.reservations (enterprise_id, mews_id, account_id, account_type,"
                " state, mews_updated_utc, raw, raw_hash) values"
                " (%s, gen_random_uuid(), gen_random_uuid(), 'Customer', 'Confirmed', now(),"
                " '{}', '')",
                (enterprise,),
            )
        yield conn


def public_tables(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "select tablename from pg_tables where schemaname = 'public' order by 1"
    ).fetchall()
    return [name for (name,) in rows]


def count_as(
    conn: psycopg.Connection, role: str, table: str, user_id: str | None = None
) -> int | None:
    """Rows of `table` visible to the role; None when the role may not read the table at all."""
    try:
        with as_role(conn, role, user_id):
            row = conn.execute(
                psycopg.sql.SQL("select count(*) from public.{}").format(
                    psycopg.sql.Identifier(table)
                )
            ).fetchone()
            return int(row[0]) if row else 0
    except psycopg.errors.InsufficientPrivilege:
        return None


def test_the_suite_sees_every_migrated_table(conn: psycopg.Connection) -> None:
    assert len(discover()) > 0
    assert {"guests", "vendors", "reservations", "resources", "event_inbox"} <= set(
        public_tables(conn)
    )


def test_anon_reads_nothing_from_any_table(conn: psycopg.Connection) -> None:
    visible = {t: count_as(conn, "anon", t) for t in public_tables(conn)}
    assert {t: n for t, n in visible.items() if n} == {}


def test_anon_writes_nothing(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege), as_role(conn, "anon"):
        conn.execute("insert into public.chains (id, name) values (gen_random_uuid(), 'x')")


def test_anon_cannot_call_the_upsert_api(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege), as_role(conn, "anon"):
        conn.execute("select public.upsert_guests(%s, '[]'::jsonb)", (CHAIN_ID,))


def test_authenticated_without_membership_reads_nothing(conn: psycopg.Connection) -> None:
    outsider = add_user(conn, enterprise_id=OTHER_ENTERPRISE_ID)
    conn.execute("delete from public.memberships where user_id = %s", (outsider,))
    visible = {t: count_as(conn, "authenticated", t, outsider) for t in public_tables(conn)}
    assert {t: n for t, n in visible.items() if n and t != "app_users"} == {}
    assert visible["app_users"] == 1  # their own profile only


def test_staff_read_only_their_enterprise_and_its_chain(conn: psycopg.Connection) -> None:
    staff = add_user(conn, enterprise_id=ENTERPRISE_ID)
    with as_role(conn, "authenticated", staff):
        chains = conn.execute("select id::text from public.chains").fetchall()
        enterprises = conn.execute("select id::text from public.enterprises").fetchall()
        guest_chains = conn.execute("select distinct chain_id::text from public.guests").fetchall()
        reservation_enterprises = conn.execute(
            "select distinct enterprise_id::text from public.reservations"
        ).fetchall()
    assert chains == [(CHAIN_ID,)]
    assert enterprises == [(ENTERPRISE_ID,)]
    assert guest_chains == [(CHAIN_ID,)]
    assert reservation_enterprises == [(ENTERPRISE_ID,)]


def test_a_chain_membership_reads_every_enterprise_of_that_chain(conn: psycopg.Connection) -> None:
    second = "6f1a3b5e-0000-4000-8000-0000000e0003"
    conn.execute(
        "insert into public.enterprises (id, chain_id, name) values (%s, %s, 'Alpha Brno')",
        (second, CHAIN_ID),
    )
    chain_staff = add_user(conn, chain_id=CHAIN_ID)
    with as_role(conn, "authenticated", chain_staff):
        enterprises = conn.execute("select id::text from public.enterprises order by 1").fetchall()
    assert enterprises == sorted([(ENTERPRISE_ID,), (second,)])


def test_staff_cannot_write_mirror_tables(conn: psycopg.Connection) -> None:
    staff = add_user(conn, enterprise_id=ENTERPRISE_ID)
    with pytest.raises(psycopg.errors.InsufficientPrivilege), as_role(conn, "authenticated", staff):
        conn.execute("delete from public.guests")
    with pytest.raises(psycopg.errors.InsufficientPrivilege), as_role(conn, "authenticated", staff):
        conn.execute("select public.upsert_guests(%s, '[]'::jsonb)", (CHAIN_ID,))


def test_staff_cannot_manage_memberships(conn: psycopg.Connection) -> None:
    staff = add_user(conn, enterprise_id=ENTERPRISE_ID)
    newcomer = add_user(conn, enterprise_id=OTHER_ENTERPRISE_ID)
    with pytest.raises(psycopg.errors.InsufficientPrivilege), as_role(conn, "authenticated", staff):
        conn.execute(
            "insert into public.memberships (user_id, enterprise_id, role)"
            " values (%s, %s, 'admin')",
            (newcomer, ENTERPRISE_ID),
        )


def test_an_admin_manages_memberships_of_their_enterprise_only(conn: psycopg.Connection) -> None:
    admin = add_user(conn, enterprise_id=ENTERPRISE_ID, role="admin")
    newcomer = add_user(conn, enterprise_id=OTHER_ENTERPRISE_ID)
    with as_role(conn, "authenticated", admin):
        inserted = conn.execute(
            "insert into public.memberships (user_id, enterprise_id, role) values (%s, %s, 'staff')"
            " returning role",
            (newcomer, ENTERPRISE_ID),
        ).fetchall()
    assert inserted == [("staff",)]
    with pytest.raises(psycopg.errors.InsufficientPrivilege), as_role(conn, "authenticated", admin):
        conn.execute(
            "insert into public.memberships (user_id, enterprise_id, role)"
            " values (%s, %s, 'staff')",
            (admin, OTHER_ENTERPRISE_ID),
        )


def test_service_role_reads_and_writes_everything(conn: psycopg.Connection) -> None:
    with as_role(conn, "service_role"):
        guests = conn.execute("select count(*) from public.guests").fetchone()
        inbox = conn.execute(
            "insert into public.event_inbox (source, body_raw, body_hash) values"
            " ('general_webhook', '{}', 'h') returning id"
        ).fetchall()
    assert guests == (6,)
    assert len(inbox) == 1
