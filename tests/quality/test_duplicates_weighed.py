"""Weighed duplicate suggestions in a real database: the facts job writes them with their
probability and evidence, each enterprise sees them at its own threshold, best first, and a
login of another hotel sees nothing and cannot change the threshold."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from shared.db.store import Store
from shared.quality import duplicates
from shared.quality.facts import refresh_chain
from tests.quality.conftest import insert_profile
from tests.support.rows import CHAIN_ID, ENTERPRISE_ID, OTHER_ENTERPRISE_ID
from tests.support.tenancy import add_user, as_role, seed_tenancy

SYLLABLES = ("ka", "lo", "mi", "ne", "su", "ta", "vor", "ben", "dri", "gal", "hu", "zen", "pet")


def name(i: int) -> str:
    return "".join(SYLLABLES[i // 13**k % 13] for k in range(3)).capitalize()


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        seed_tenancy(connection)
        yield connection


def people(conn: psycopg.Connection, count: int, *, chain_id: str = CHAIN_ID) -> list[str]:
    return [
        insert_profile(
            conn,
            {
                "first_name": name(i * 7 + 3),
                "last_name": name(i * 11 + 5) + "son",
                "birth_date": f"{1940 + i % 60}-{1 + i % 12:02d}-{1 + i % 28:02d}",
                "email": f"person{i}@example.com",
                "phone": f"+4420794{i:05d}",
            },
            chain_id=chain_id,
        )
        for i in range(count)
    ]


def suggestions(conn: psycopg.Connection, enterprise: str) -> dict[str, Any]:
    (found,) = conn.execute(  # type: ignore[misc]
        "select public.quality_duplicate_suggestions(%s)", (enterprise,)
    ).fetchone()
    return found  # type: ignore[no-any-return]


@pytest.mark.anyio
async def test_the_job_writes_weighed_pairs_with_their_evidence(
    conn: psycopg.Connection, store: Store
) -> None:
    people(conn, 300)
    william = insert_profile(
        conn,
        {
            "first_name": "William",
            "last_name": "Whitfield",
            "birth_date": "1980-03-07",
            "email": "w.whitfield@mail.example",
            "phone": "+447400123456",
        },
    )
    bill = insert_profile(  # re-typed at the desk: nickname, day and month swapped, 00 phone
        conn,
        {
            "first_name": "Bill",
            "last_name": "Whitfield",
            "birth_date": "1980-07-03",
            "email": "bill@work.example",
            "phone": "0044 7400 123456",
        },
    )
    son = insert_profile(  # the same name and phone, born 28 years later: another person
        conn,
        {
            "first_name": "William",
            "last_name": "Whitfield",
            "birth_date": "2008-01-20",
            "phone": "+447400123456",
        },
    )
    conn.execute("update public.guests set synced_at = now()")
    refresh = await refresh_chain(store, CHAIN_ID)
    assert refresh.pairs >= 1
    rows = conn.execute(
        "select guest_a, guest_b, probability, match_weight, evidence from public.guest_duplicates"
        " where chain_id = %s order by probability desc",
        (CHAIN_ID,),
    ).fetchall()
    best = rows[0]
    assert {str(best[0]), str(best[1])} == {william, bill}
    assert best[2] >= 0.9
    levels = {(e["field"], e["level"]) for e in best[4]}
    assert ("first_name", "nickname") in levels
    assert ("birth_date", "day_month_swapped") in levels
    assert ("phone", "exact") in levels  # "0044 7400 123456" read as international
    assert [e["weight"] for e in best[4]] == sorted((e["weight"] for e in best[4]), reverse=True)
    shown = suggestions(conn, ENTERPRISE_ID)
    assert shown["threshold"] == pytest.approx(0.9)
    pairs = {frozenset((p["a"]["guest"], p["b"]["guest"])) for p in shown["pairs"]}
    assert frozenset((william, bill)) in pairs
    assert not any(son in pair for pair in pairs)
    assert shown["pairs"][0]["a"]["name"] in ("William Whitfield", "Bill Whitfield")


def test_inputs_page_through_active_guests_without_ota_relays(conn: psycopg.Connection) -> None:
    ids = sorted(people(conn, 25))
    conn.execute("update public.guests set is_active = false where mews_id = %s", (ids[0],))
    conn.execute(
        "update public.guest_facts set email_normalized = 'x@relay.example' where guest_mews_id = %s",
        (ids[1],),
    )
    conn.execute("update public.guests set has_ota_email = true where mews_id = %s", (ids[1],))
    seen: list[dict[str, Any]] = []
    after = None
    while True:
        (page,) = conn.execute(  # type: ignore[misc]
            "select public.quality_duplicate_inputs(%s, %s, 10)", (CHAIN_ID, after)
        ).fetchone()
        seen += page["guests"]
        after = page["next"]
        if after is None:
            break
    assert [g["id"] for g in seen] == ids[1:]
    assert seen[0]["email"] is None
    assert duplicates.guest_from_row(seen[1]).birth_date is not None


def put(conn: psycopg.Connection, pairs: list[dict[str, Any]]) -> dict[str, Any]:
    (done,) = conn.execute(  # type: ignore[misc]
        "select public.quality_duplicates_put(%s, %s)", (CHAIN_ID, Jsonb(pairs))
    ).fetchone()
    return done  # type: ignore[no-any-return]


def test_threshold_per_enterprise_best_first_and_only_for_its_hotels(
    conn: psycopg.Connection,
) -> None:
    a, b, c, d = sorted(people(conn, 4))
    evidence = [{"field": "phone", "level": "exact", "weight": 8.0, "detail": ""}]
    started = put(conn, [{"a": a, "b": b, "probability": 0.6, "weight": 20, "evidence": evidence}])
    put(conn, [{"a": c, "b": d, "probability": 0.97, "weight": 30, "evidence": evidence}])
    assert [p["probability"] for p in suggestions(conn, ENTERPRISE_ID)["pairs"]] == [
        pytest.approx(0.97)
    ]
    admin = add_user(conn, enterprise_id=ENTERPRISE_ID, role="admin")
    staff = add_user(conn, enterprise_id=ENTERPRISE_ID, role="staff")
    stranger = add_user(conn, enterprise_id=OTHER_ENTERPRISE_ID, role="admin")
    with as_role(conn, "authenticated", admin):
        conn.execute(
            "insert into public.duplicate_settings (enterprise_id, threshold) values (%s, 0.55)",
            (ENTERPRISE_ID,),
        )
        shown = suggestions(conn, ENTERPRISE_ID)
    assert [p["probability"] for p in shown["pairs"]] == [pytest.approx(0.97), pytest.approx(0.6)]
    assert shown["total"] == 2
    conn.execute(
        "insert into public.duplicate_settings (enterprise_id, threshold) values (%s, 0.55)",
        (ENTERPRISE_ID,),
    )
    with as_role(conn, "authenticated", staff):  # staff read it; only an admin sets it
        assert conn.execute("update public.duplicate_settings set threshold = 0.99").rowcount == 0
        assert suggestions(conn, ENTERPRISE_ID)["total"] == 2
    with as_role(conn, "authenticated", stranger):  # an admin of another hotel
        assert suggestions(conn, ENTERPRISE_ID)["pairs"] == []
        assert conn.execute("select count(*) from public.guest_duplicates").fetchone() == (0,)
        assert conn.execute("update public.duplicate_settings set threshold = 0.99").rowcount == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "insert into public.duplicate_settings (enterprise_id, threshold) values (%s, 0.6)",
                (ENTERPRISE_ID,),
            )
    with (
        as_role(conn, "authenticated", stranger),
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("select public.quality_duplicates_put(%s, '[]')", (CHAIN_ID,))
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("update public.duplicate_settings set threshold = 0.2")
    # a pass that wrote only one pair prunes the other
    later = put(conn, [{"a": c, "b": d, "probability": 0.97, "weight": 30, "evidence": evidence}])
    assert later["at"] >= started["at"]
    (gone,) = conn.execute(  # type: ignore[misc]
        "select public.quality_duplicates_prune(%s, %s)", (CHAIN_ID, later["at"])
    ).fetchone()
    assert gone == 1


@pytest.mark.anyio
async def test_an_address_on_many_profiles_pairs_no_one_and_is_counted(
    conn: psycopg.Connection, store: Store
) -> None:
    ids = people(conn, 60)
    conn.execute(
        "update public.guests set email = 'bookings@agency.example', phone = null,"
        " synced_at = now() where mews_id = any (%s::uuid[])",
        (ids[:40],),
    )
    conn.execute("update public.guests set synced_at = now()")
    refresh = await refresh_chain(store, CHAIN_ID)
    assert refresh.facts == 60
    assert refresh.pairs == 0
    assert refresh.uninformative >= 1
    assert conn.execute("select count(*) from public.guest_duplicates").fetchone() == (0,)
