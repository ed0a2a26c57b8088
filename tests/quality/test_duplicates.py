"""Duplicate suggestions updated around the guests that changed are exactly what a rebuild from
scratch finds, and a rebuild in parts is the rebuild in one call."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.quality.conftest import insert_many
from tests.support.rows import CHAIN_ID
from tests.support.tenancy import seed_tenancy

GUESTS = 120


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        seed_tenancy(connection)
        insert_many(connection, GUESTS)
        connection.execute("select public.quality_find_duplicates(%s)", (CHAIN_ID,))
        yield connection


def pairs(conn: psycopg.Connection) -> dict[tuple[str, str], Any]:
    return {
        (str(a), str(b)): evidence
        for a, b, evidence in conn.execute(
            "select guest_a, guest_b, evidence from public.guest_duplicates where chain_id = %s",
            (CHAIN_ID,),
        )
    }


def guests(conn: psycopg.Connection, count: int, offset: int = 0) -> list[str]:
    return [
        str(g)
        for (g,) in conn.execute(
            "select mews_id from public.guests order by mews_id offset %s limit %s", (offset, count)
        )
    ]


def change(conn: psycopg.Connection, ids: list[str], **columns: Any) -> None:
    """Guests change in the mirror, then their facts are put (which queues them), as a sync and
    the score job would."""
    sets = ", ".join(f"{column} = %({column})s" for column in columns)
    conn.execute(
        f"update public.guests set {sets}, synced_at = now() where mews_id = any (%(ids)s::uuid[])",
        {**columns, "ids": ids},
    )
    rows = conn.execute(
        "select jsonb_agg(jsonb_build_object('guest_mews_id', mews_id, 'email_normalized', lower(email),"
        " 'email_valid', true, 'phone_e164', phone, 'phone_valid', true, 'synced_at', synced_at))"
        " from public.guests where mews_id = any (%s::uuid[])",
        (ids,),
    ).fetchone()
    assert rows is not None
    conn.execute("select public.quality_facts_put(%s, %s)", (CHAIN_ID, Jsonb(rows[0])))


def refreshed_equals_rebuilt(conn: psycopg.Connection) -> None:
    while conn.execute(
        "select (public.quality_duplicates_refresh(%s, 7)->>'more')::boolean", (CHAIN_ID,)
    ).fetchone() == (True,):
        pass
    around = pairs(conn)
    conn.execute("select public.quality_find_duplicates(%s)", (CHAIN_ID,))
    assert around == pairs(conn)


@pytest.mark.parametrize(
    "scenario",
    [
        "join a group",
        "leave every group",
        "grow a group past 20 and back",
        "deactivate and reactivate",
        "an OTA relay address",
        "same name and birth date",
    ],
)
def test_suggestions_updated_around_changed_guests_are_a_rebuilds(
    conn: psycopg.Connection, scenario: str
) -> None:
    assert pairs(conn), "the data has duplicates to begin with"
    some = guests(conn, 3)
    if scenario == "join a group":
        change(conn, some, phone="+442079400001")
    elif scenario == "leave every group":
        change(conn, some, phone=None, email="alone@example.com", birth_date=None)
    elif scenario == "grow a group past 20 and back":
        crowd = guests(conn, 22, offset=10)
        change(conn, crowd[:19], email="desk@example.com")
        refreshed_equals_rebuilt(conn)  # 19: a group
        change(conn, crowd[19:], email="desk@example.com")
        refreshed_equals_rebuilt(conn)  # 22: a front desk, no group
        change(conn, crowd[:3], email="gone@example.com")
    elif scenario == "deactivate and reactivate":
        change(conn, some, is_active=False)
        refreshed_equals_rebuilt(conn)
        change(conn, some, is_active=True)
    elif scenario == "an OTA relay address":
        change(conn, some, email="relay@booking.example", has_ota_email=True)
    else:
        change(conn, some, first_name="Ana", last_name="Novák", birth_date="1980-05-04")
    refreshed_equals_rebuilt(conn)


def test_a_rebuild_in_parts_is_the_rebuild_in_one_call(conn: psycopg.Connection) -> None:
    whole = pairs(conn)
    conn.execute("delete from public.guest_duplicates")
    found = [
        conn.execute(
            "select public.quality_find_duplicates(%s, %s, 3)", (CHAIN_ID, part)
        ).fetchone()
        for part in range(3)
    ]
    assert pairs(conn) == whole
    assert sum(f[0]["pairs"] for f in found if f) == len(whole)
