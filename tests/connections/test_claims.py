"""Leases over connections in the real database: concurrent claimers never share a
connection, every due connection is served, refused and disabled ones are not, and a pass cut
short by its time budget is due again first."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest


def key_of(token: str) -> str:
    return "mews:" + hashlib.sha256(token.encode()).hexdigest()


def add_connection(conn: psycopg.Connection, name: str, *, status: str = "active") -> str:
    connection_id = str(uuid.uuid4())
    conn.execute(
        "select public.connection_apply('IntegrationCreated', %s, %s, %s, %s, %s)",
        (connection_id, str(uuid.uuid4()), name, "gAAAA-encrypted-" + name, key_of(name)),
    )
    if status != "active":
        conn.execute("select public.connection_set_status(%s, %s)", (connection_id, status))
    return connection_id


def claim(
    conn: psycopg.Connection, holder: str, limit: int, **options: Any
) -> list[dict[str, Any]]:
    row = conn.execute(
        "select public.connection_claim(%s, %s, %s, %s, %s)",
        (
            options.get("job", "poll_changes"),
            holder,
            limit,
            options.get("lease", 600),
            options.get("every", 0),
        ),
    ).fetchone()
    assert row is not None
    claimed: list[dict[str, Any]] = row[0]
    return claimed


def release(conn: psycopg.Connection, connection_id: str, holder: str, **options: Any) -> bool:
    row = conn.execute(
        "select public.connection_release('poll_changes', %s, %s, %s, %s, %s)",
        (
            connection_id,
            holder,
            options.get("status", "succeeded"),
            options.get("completed", True),
            options.get("error"),
        ),
    ).fetchone()
    assert row is not None
    return bool(row[0]["released"])


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


def test_four_concurrent_claimers_share_twenty_connections_without_overlap(
    conn: psycopg.Connection, database_url: str
) -> None:
    ids = {add_connection(conn, f"hotel-{i}") for i in range(20)}
    barrier = threading.Barrier(4)
    claimed: dict[str, list[str]] = {}

    def claimer(holder: str) -> None:
        with psycopg.connect(database_url, autocommit=True) as mine:
            barrier.wait()
            mine_claims: list[str] = []
            while batch := claim(mine, holder, 3):
                mine_claims += [str(c["integration_id"]) for c in batch]
            claimed[holder] = mine_claims

    threads = [threading.Thread(target=claimer, args=(f"instance-{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    every = [c for claims in claimed.values() for c in claims]
    assert sorted(every) == sorted(ids)  # each connection once: none twice, none left out
    assert len(claimed) == 4
    # nobody claims a leased connection again
    assert claim(conn, "late", 20) == []


def test_claims_carry_what_a_worker_needs_and_never_the_plain_token(
    conn: psycopg.Connection,
) -> None:
    connection_id = add_connection(conn, "Alpha")
    [row] = claim(conn, "me", 5)
    assert row["integration_id"] == connection_id
    assert row["token_key"] == key_of("Alpha")
    assert row["token_encrypted"] == "gAAAA-encrypted-Alpha"
    assert row["source"] == "webhook"
    assert len(row["enterprise_ids"]) == 1
    assert "Alpha" not in json.dumps({k: v for k, v in row.items() if k != "name"}).replace(
        "encrypted-Alpha", ""
    )


def test_refused_disabled_deleted_and_tokenless_connections_are_not_claimed(
    conn: psycopg.Connection,
) -> None:
    good = add_connection(conn, "good")
    add_connection(conn, "refused")
    conn.execute("select public.token_unauthorized(%s, 'HTTP 401')", (key_of("refused"),))
    add_connection(conn, "paused", status="disabled")
    deleted = add_connection(conn, "gone")
    conn.execute("select public.connection_apply('IntegrationDeleted', %s)", (deleted,))
    conn.execute(
        "select public.connection_apply('IntegrationEnabled', %s)", (str(uuid.uuid4()),)
    )  # known only by an enable: no token yet
    assert [c["integration_id"] for c in claim(conn, "me", 10)] == [good]


def test_a_new_token_resumes_a_refused_connection(conn: psycopg.Connection) -> None:
    refused = add_connection(conn, "old-token")
    conn.execute("select public.token_unauthorized(%s, 'HTTP 401')", (key_of("old-token"),))
    assert claim(conn, "me", 10) == []
    conn.execute(
        "select public.connection_apply('IntegrationApiKeyCreated', %s, null, null, %s, %s)",
        (refused, "gAAAA-encrypted-new", key_of("new-token")),
    )
    [row] = claim(conn, "me", 10)
    assert row["integration_id"] == refused
    assert row["token_key"] == key_of("new-token")


def test_an_expired_lease_is_taken_over_and_the_old_holder_cannot_release_it(
    conn: psycopg.Connection,
) -> None:
    connection_id = add_connection(conn, "Alpha")
    assert claim(conn, "dead-instance", 1, lease=1)
    conn.execute("update public.connection_jobs set lease_expires_at = now() - interval '1 second'")
    [row] = claim(conn, "next-instance", 1)
    assert row["integration_id"] == connection_id
    assert not release(conn, connection_id, "dead-instance")
    assert release(conn, connection_id, "next-instance")


def test_every_seconds_and_the_order_that_lets_none_starve(conn: psycopg.Connection) -> None:
    first, second, third = (add_connection(conn, name) for name in ("a", "b", "c"))
    [one] = claim(conn, "i1", 1, every=300)
    release(conn, one["integration_id"], "i1")
    # the two never served come before the one just served; it is not due for 300 s anyway
    later = [c["integration_id"] for c in claim(conn, "i2", 5, every=300)]
    assert set(later) == {first, second, third} - {one["integration_id"]}
    for connection_id in later:
        release(conn, connection_id, "i2")
    assert claim(conn, "i3", 5, every=300) == []
    assert len(claim(conn, "i3", 5, every=0)) == 3


def test_a_pass_cut_short_by_its_budget_is_due_again_first(conn: psycopg.Connection) -> None:
    first, second = add_connection(conn, "a"), add_connection(conn, "b")
    claimed = [c["integration_id"] for c in claim(conn, "i1", 2, every=300)]
    release(conn, first, "i1", status="partial", completed=False, error="time budget spent")
    release(conn, second, "i1", status="failed", error="Mews 503")
    assert second in claimed
    # the cut-short one is due at once and first; the failed one waits for its turn
    assert [c["integration_id"] for c in claim(conn, "i2", 2, every=300)] == [first]
    jobs = conn.execute(
        "select integration_id::text, last_status, last_succeeded_at is not null, last_error"
        " from public.connection_jobs order by last_status"
    ).fetchall()
    assert (second, "failed", False, "Mews 503") in jobs


def test_only_a_pass_that_finished_its_work_is_its_last_success(conn: psycopg.Connection) -> None:
    """`partial` (a window left for the next run) is not a success; quarantined records do not
    make a pass partial, so a `succeeded` one counts."""
    left, done = add_connection(conn, "left"), add_connection(conn, "done")
    claim(conn, "i1", 2)
    release(conn, left, "i1", status="partial", error="left for the next run: customers window")
    release(conn, done, "i1", status="succeeded")
    succeeded = dict(
        conn.execute(
            "select integration_id::text, last_succeeded_at is not null from public.connection_jobs"
        ).fetchall()
    )
    assert succeeded == {left: False, done: True}


def test_a_holder_renews_only_its_own_live_leases(conn: psycopg.Connection) -> None:
    mine, theirs = add_connection(conn, "mine"), add_connection(conn, "theirs")
    claim(conn, "me", 1, lease=60)
    claim(conn, "other", 1, lease=60)
    conn.execute("update public.connection_jobs set lease_expires_at = now() + interval '1 second'")
    renewed = conn.execute("select public.connection_renew('me', 120)").fetchone()
    assert renewed is not None
    assert renewed[0] == {"renewed": 1}
    leases = dict(
        conn.execute(
            "select lease_holder, lease_expires_at > now() + interval '100 seconds'"
            " from public.connection_jobs"
        ).fetchall()
    )
    assert leases == {"me": True, "other": False}
    # an expired lease is not brought back to life: another instance may have it by now
    conn.execute(
        "update public.connection_jobs set lease_expires_at = now() - interval '1 second'"
        " where lease_holder = 'other'"
    )
    gone = conn.execute("select public.connection_renew('other', 120)").fetchone()
    assert gone is not None
    assert gone[0] == {"renewed": 0}
    assert {mine, theirs} == {
        r[0] for r in conn.execute("select integration_id::text from public.connection_jobs")
    }


def test_a_connection_whose_claiming_process_died_is_due_again_at_once(
    conn: psycopg.Connection, database_url: str
) -> None:
    """A holder that names its process's session lock (`...@<session>`) loses its claims the
    moment that lock is free; a live one keeps them; one naming no session keeps them until
    the lease expires (the Supabase API)."""
    live_session, dead_session = str(uuid.uuid4()), str(uuid.uuid4())
    alive, dead, plain = (add_connection(conn, name) for name in ("alive", "dead", "plain"))
    with psycopg.connect(database_url, autocommit=True) as process:
        process.execute("select pg_advisory_lock(app.session_key(%s))", (live_session,))
        for connection_id, holder in (
            (alive, f"host:1:{uuid.uuid4()}@{live_session}"),
            (dead, f"host:2:{uuid.uuid4()}@{dead_session}"),
            (plain, f"host:3:{uuid.uuid4()}"),
        ):
            row = conn.execute(
                "select public.connection_claim('poll_changes', %s, 1, 600, 0, %s)",
                (holder, connection_id),
            ).fetchone()
            assert row is not None
            assert [c["integration_id"] for c in row[0]] == [connection_id]
        assert [c["integration_id"] for c in claim(conn, "next", 10)] == [dead]
