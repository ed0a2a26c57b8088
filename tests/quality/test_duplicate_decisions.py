"""Staff decisions on duplicate pairs, in a real database: a pair decided "different" is never
suggested again until one of the two guests changes in a field the matcher uses; "same" with a
survivor waits for the push's merge; every decision is kept with who and when; the readers
(suggestions, the gaps view, the report) apply the enterprise's threshold and show evidence
strongest first."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from shared.quality.rules import DEFAULT_RULES
from tests.quality.conftest import enable_rules, insert_profile
from tests.support.rows import CHAIN_ID, ENTERPRISE_ID
from tests.support.tenancy import add_user, as_role, seed_tenancy

EVIDENCE = [
    {"field": "email", "level": "different", "weight": -1.0, "detail": ""},
    {"field": "birth_date", "level": "exact", "weight": 6.1, "detail": "1980-03-07"},
    {"field": "first_name", "level": "nickname", "weight": 3.2, "detail": "bill/william"},
]


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        seed_tenancy(connection)
        enable_rules(connection, ENTERPRISE_ID, [r.model_dump() for r in DEFAULT_RULES])
        yield connection


def one(conn: psycopg.Connection, sql: str, *params: Any) -> Any:
    row = conn.execute(sql, params).fetchone()
    assert row is not None
    return row[0]


def two_guests(conn: psycopg.Connection) -> tuple[str, str]:
    a = insert_profile(
        conn,
        {
            "first_name": "William",
            "last_name": "Whitfield",
            "birth_date": "1980-03-07",
            "email": "w@mail.example",
        },
    )
    b = insert_profile(
        conn, {"first_name": "Bill", "last_name": "Whitfield", "birth_date": "1980-03-07"}
    )
    conn.execute("select public.quality_rescore(%s)", (ENTERPRISE_ID,))
    low, high = sorted((a, b))
    return low, high


def put(conn: psycopg.Connection, a: str, b: str, probability: float = 0.97) -> None:
    pair = {"a": a, "b": b, "probability": probability, "weight": 25.0, "evidence": EVIDENCE}
    conn.execute("select public.quality_duplicates_put(%s, %s)", (CHAIN_ID, Jsonb([pair])))


def suggested(conn: psycopg.Connection) -> list[tuple[str, str]]:
    found = one(conn, "select public.quality_duplicate_suggestions(%s)", ENTERPRISE_ID)
    return [(p["a"]["guest"], p["b"]["guest"]) for p in found["pairs"]]


def decide(
    conn: psycopg.Connection,
    user: str,
    pair: tuple[str, str],
    decision: str,
    survivor: str | None = None,
) -> dict[str, Any]:
    """One committed request of a staff member, as PostgREST runs it."""
    with conn.transaction():
        conn.execute("set local role authenticated")
        conn.execute(
            "select set_config('request.jwt.claims', %s, true)",
            (json.dumps({"role": "authenticated", "sub": user}),),
        )
        return one(  # type: ignore[no-any-return]
            conn,
            "select public.duplicate_decide(%s, %s, %s, %s, %s, 'checked the passports')",
            CHAIN_ID,
            pair[1],  # either order
            pair[0],
            decision,
            survivor,
        )


def test_the_fingerprint_hashes_exactly_what_the_matcher_reads(conn: psycopg.Connection) -> None:
    """Every field quality_duplicate_inputs hands the matcher is in the fingerprint (a field added
    there and not here fails this test)."""
    a, b = two_guests(conn)
    conn.execute(
        "update public.guest_facts set email_normalized = 'w@mail.example', phone_e164 = '+447400123456'"
        " where guest_mews_id = %s",
        (a,),
    )
    page = one(conn, "select public.quality_duplicate_inputs(%s)", CHAIN_ID)
    for guest in page["guests"]:
        matcher_fields = {k: v for k, v in guest.items() if k != "id"}
        assert one(conn, "select md5(%s::jsonb::text)", json.dumps(matcher_fields)) == one(
            conn, "select app.guest_match_fingerprint(%s, %s)", CHAIN_ID, guest["id"]
        )
    assert {g["id"] for g in page["guests"]} == {a, b}


def test_a_pair_decided_different_stays_away_until_a_matcher_field_changes(
    conn: psycopg.Connection,
) -> None:
    a, b = two_guests(conn)
    staff = add_user(conn, enterprise_id=ENTERPRISE_ID)
    put(conn, a, b)
    assert suggested(conn) == [(a, b)]
    decided = decide(conn, staff, (a, b), "different")
    assert (decided["decision"], decided["decided_by"], decided["merge_status"]) == (
        "different",
        staff,
        None,
    )
    assert suggested(conn) == []
    assert one(conn, "select count(*) from public.guest_duplicates") == 0
    put(conn, a, b)  # the next pass finds the pair again: it is held back where it is written
    assert one(conn, "select count(*) from public.guest_duplicates") == 0
    assert suggested(conn) == []
    # a field the matcher does not use changes: still held back
    conn.execute(
        "update public.guests set notes = 'VIP', title = 'Mister' where mews_id = %s", (b,)
    )
    put(conn, a, b)
    assert suggested(conn) == []
    # one of the two changes in a field the matcher uses: suggested again
    conn.execute("update public.guests set birth_date = '1980-07-03' where mews_id = %s", (b,))
    put(conn, a, b)
    assert suggested(conn) == [(a, b)]
    # so is a change of what the matcher reads from the facts (the normalised phone)
    decide(conn, staff, (a, b), "different")
    assert suggested(conn) == []
    conn.execute(
        "update public.guest_facts set phone_e164 = '+447400123456' where guest_mews_id = %s", (a,)
    )
    put(conn, a, b)
    assert suggested(conn) == [(a, b)]


def test_decisions_are_kept_with_who_and_when_and_can_be_replaced(
    conn: psycopg.Connection,
) -> None:
    a, b = two_guests(conn)
    first = add_user(conn, enterprise_id=ENTERPRISE_ID)
    second = add_user(conn, enterprise_id=ENTERPRISE_ID, role="admin")
    put(conn, a, b)
    same = decide(conn, first, (a, b), "same", survivor=a)
    assert same["merge_status"] == "pending"
    pending = one(conn, "select public.duplicate_merges_pending()")
    assert [(m["source"], m["target"], m["decided_by"]) for m in pending] == [(b, a, first)]
    put(conn, a, b)
    assert suggested(conn) == []  # "same" is held back for good
    replaced = decide(conn, second, (a, b), "different")
    assert replaced["replaced"] == "same"
    assert one(conn, "select public.duplicate_merges_pending()") == []  # the merge withdrawn
    current = conn.execute(
        "select decision, survivor, decided_by::text, note, merge_status from public.duplicate_decisions"
    ).fetchall()
    assert current == [("different", None, second, "checked the passports", None)]
    history = conn.execute(
        "select event, survivor::text, actor::text from public.duplicate_decision_log order by id"
    ).fetchall()
    assert history == [("same", a, first), ("different", None, second)]
    times = conn.execute("select at from public.duplicate_decision_log order by id").fetchall()
    assert times[0] < times[1]


def test_bad_decisions_are_refused_with_a_reason(conn: psycopg.Connection) -> None:
    a, b = two_guests(conn)
    staff = add_user(conn, enterprise_id=ENTERPRISE_ID)
    other = insert_profile(conn, {"last_name": "Other"})
    for args, message in (
        ((a, a, "same", None), "two different guests"),
        ((a, b, "maybe", None), "p_decision"),
        ((a, b, "different", a), "survivor"),
        ((a, b, "same", other), "survivor"),
        ((a, "6f1a3b5e-0000-4000-8000-000000000999", "different", None), "profiles of the chain"),
    ):
        with pytest.raises(psycopg.errors.InvalidParameterValue, match=message):
            decide(conn, staff, (args[0], args[1]), args[2], args[3])
    conn.execute("update public.guests set is_active = false where mews_id = %s", (b,))
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="cannot be merged"):
        decide(conn, staff, (a, b), "same", survivor=a)


def test_merge_outcomes_are_recorded_and_a_failure_is_visible(conn: psycopg.Connection) -> None:
    a, b = two_guests(conn)
    staff = add_user(conn, enterprise_id=ENTERPRISE_ID)
    decided = decide(conn, staff, (a, b), "same", survivor=b)
    conn.execute("set role service_role")
    try:
        (merge,) = one(conn, "select public.duplicate_merges_pending(10, %s)", Jsonb([CHAIN_ID]))
        record = "select public.duplicate_merge_record(%s, %s, %s, %s, %s, %s)"
        one(conn, record, CHAIN_ID, a, b, merge["decided_at"], "pending", "409 three times")
        still = one(conn, "select public.duplicate_merges_pending()")
        assert [m["attempts"] for m in still] == [1]
        one(conn, record, CHAIN_ID, a, b, merge["decided_at"], "failed", "Invalid TargetAccountId.")
    finally:
        conn.execute("reset role")
    assert decided["decided_at"] is not None
    state = conn.execute(
        "select merge_status, merge_error, merge_attempts from public.duplicate_decisions"
    ).fetchone()
    assert state == ("failed", "Invalid TargetAccountId.", 2)
    assert conn.execute(
        "select guest_mews_id::text, field, local_value, resolution, detail from public.conflict_log"
    ).fetchall() == [(a, "merge", {"merge_into": b}, "refused_by_mews", "Invalid TargetAccountId.")]
    events = conn.execute("select event from public.duplicate_decision_log order by id").fetchall()
    assert events == [("same",), ("merge_retry",), ("merge_failed",)]
    assert one(conn, "select public.duplicate_merges_pending()") == []


def test_a_merged_pair_keeps_its_decision(conn: psycopg.Connection) -> None:
    a, b = two_guests(conn)
    staff = add_user(conn, enterprise_id=ENTERPRISE_ID)
    decided = decide(conn, staff, (a, b), "same", survivor=a)
    conn.execute(
        "select public.duplicate_merge_record(%s, %s, %s, %s, 'merged')",
        (CHAIN_ID, a, b, decided["decided_at"]),
    )
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="merged in Mews"):
        decide(conn, staff, (a, b), "different")


def test_readers_apply_the_threshold_and_show_the_strongest_evidence_first(
    conn: psycopg.Connection,
) -> None:
    a, b = two_guests(conn)
    c = insert_profile(conn, {"first_name": "Jan", "last_name": "Novak"})
    d = insert_profile(conn, {"first_name": "Jan", "last_name": "Novák"})
    conn.execute("select public.quality_rescore(%s)", (ENTERPRISE_ID,))
    put(conn, a, b, 0.97)
    put(conn, *sorted((c, d)), 0.7)  # type: ignore[arg-type]
    staff = add_user(conn, enterprise_id=ENTERPRISE_ID)
    admin = add_user(conn, enterprise_id=ENTERPRISE_ID, role="admin")

    def seen() -> tuple[set[str], dict[str, Any]]:
        with as_role(conn, "authenticated", staff):
            gaps = conn.execute(
                "select guest_mews_id::text, message, evidence from public.quality_guest_gaps"
                " where enterprise_id = %s and kind = 'duplicate'",
                (ENTERPRISE_ID,),
            ).fetchall()
            report = one(conn, "select public.quality_report(%s)", ENTERPRISE_ID)
        for _, message, evidence in gaps:
            assert message.startswith("Possible duplicate of ")
            assert [e["weight"] for e in evidence] == [6.1, 3.2, -1.0]
        for pair in report["duplicate_pairs"]:
            assert [e["weight"] for e in pair["evidence"]] == [6.1, 3.2, -1.0]
        return {g for g, _, _ in gaps}, report

    guests, report = seen()  # the default threshold, 0.9
    assert guests == {a, b}
    assert (report["duplicates"], report["duplicate_threshold"]) == (1, pytest.approx(0.9))
    with as_role(conn, "authenticated", admin):
        conn.execute(
            "insert into public.duplicate_settings (enterprise_id, threshold) values (%s, 0.65)",
            (ENTERPRISE_ID,),
        )
    conn.execute(
        "insert into public.duplicate_settings (enterprise_id, threshold) values (%s, 0.65)",
        (ENTERPRISE_ID,),
    )
    guests, report = seen()
    assert guests == {a, b, c, d}
    assert [p["probability"] for p in report["duplicate_pairs"]] == [
        pytest.approx(0.97),
        pytest.approx(0.7),
    ]
    decide(conn, staff, (c, d), "different")
    guests, report = seen()
    assert guests == {a, b}
    assert report["duplicates"] == 1


def test_a_merge_asked_wakes_the_push_of_the_chain(
    conn: psycopg.Connection, database_url: str
) -> None:
    """As a staff edit does: the real-time worker pushes the chain (shared/listener/worker.py)."""
    a, b = two_guests(conn)
    staff = add_user(conn, enterprise_id=ENTERPRISE_ID)
    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute("listen guesthub_push")
        decide(conn, staff, (a, b), "different")
        decide(conn, staff, (a, b), "same", survivor=a)
        heard = [n.payload for n in listener.notifies(timeout=10, stop_after=1)]
    assert heard == [CHAIN_ID]


def test_a_pass_can_ask_which_pairs_are_held_back(conn: psycopg.Connection) -> None:
    a, b = two_guests(conn)
    c = insert_profile(conn, {"first_name": "Jan", "last_name": "Novak"})
    staff = add_user(conn, enterprise_id=ENTERPRISE_ID)
    decide(conn, staff, (a, b), "different")
    decide(conn, staff, (a, c), "same")
    held = "select public.quality_duplicates_held(%s)"
    assert one(conn, held, CHAIN_ID) == sorted([[a, b], sorted([a, c])])
    conn.execute("update public.guests set last_name = 'Whitfeld' where mews_id = %s", (b,))
    assert one(conn, held, CHAIN_ID) == [sorted([a, c])]
