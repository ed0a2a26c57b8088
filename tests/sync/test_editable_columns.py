"""The staff-editable guest columns are one list kept in three places: the push's fields
(shared/sync/push.py ``FIELDS``), the column grant to ``authenticated`` and the array of the
trigger that records edits (app.guests_mark_local_edit). This holds the three together: what
staff may write is exactly what the trigger records and what the push sends."""

from __future__ import annotations

import psycopg
import pytest

from shared.sync.push import FIELDS
from tests.support.rows import ENTERPRISE_ID, guest_row, store_guests
from tests.support.tenancy import add_user, as_role, seed_tenancy

VALUES = {"birth_date": "1990-01-02"}  # a value of the column's type (text otherwise)


@pytest.fixture
def staff_and_guest(database_url: str) -> tuple[str, str]:
    """A staff member and a guest of their chain."""
    guest = guest_row(last_name="Alpha")
    with psycopg.connect(database_url, autocommit=True) as conn:
        seed_tenancy(conn)
        user = add_user(conn, enterprise_id=ENTERPRISE_ID)
        conn.execute("set role service_role")
        store_guests(conn, [guest])
    return user, guest["mews_id"]


def test_staff_may_update_exactly_the_columns_the_push_sends(database_url: str) -> None:
    """The column grant on public.guests to authenticated is push.FIELDS, no more, no less."""
    with psycopg.connect(database_url) as conn:
        granted = {
            name
            for (name,) in conn.execute(
                "select attname from pg_attribute where attrelid = 'public.guests'::regclass"
                " and attnum > 0 and not attisdropped"
                " and has_column_privilege('authenticated', attrelid, attname, 'UPDATE')"
            )
        }
    assert granted == set(FIELDS)


def test_an_edit_of_each_editable_column_is_recorded_for_the_push(
    database_url: str, staff_and_guest: tuple[str, str]
) -> None:
    """Staff editing any one column of push.FIELDS leaves exactly that column pending, with
    the value they saw as its base: the trigger's array holds every one of them."""
    user, guest = staff_and_guest
    recorded: dict[str, list[str]] = {}
    with psycopg.connect(database_url) as conn:
        for column in FIELDS:
            with as_role(conn, "authenticated", user):
                conn.execute(
                    psycopg.sql.SQL("update public.guests set {} = %s where mews_id = %s").format(
                        psycopg.sql.Identifier(column)
                    ),
                    (VALUES.get(column, f"edited {column}"), guest),
                )
                row = conn.execute(
                    "select local_changes, local_base, push_status from public.guests"
                    " where mews_id = %s",
                    (guest,),
                ).fetchone()
                assert row is not None
                changes, base, status = row
                assert status == "pending", column
                recorded[column] = sorted(set(changes or {}) | set(base or {}))
    assert recorded == {column: [column] for column in FIELDS}
