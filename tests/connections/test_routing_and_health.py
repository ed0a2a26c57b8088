"""Events reach their connection by EnterpriseId and IntegrationId; events nobody covers are
kept and reported. Health per connection, and what staff of one hotel may read of it (as an
attacker holding a staff login of another hotel would try)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.connections.test_claims import key_of
from tests.support.rows import CHAIN_ID, ENTERPRISE_ID, OTHER_CHAIN_ID, OTHER_ENTERPRISE_ID
from tests.support.tenancy import add_user, as_role, seed_tenancy


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        seed_tenancy(conn)
        yield conn


def scalar(conn: psycopg.Connection, sql: str, params: Any = None) -> Any:
    row = conn.execute(sql, params).fetchone()
    return row[0] if row else None


def connect(conn: psycopg.Connection, name: str, enterprise: str, chain: str) -> str:
    connection_id = str(uuid.uuid4())
    conn.execute(
        "select public.connection_apply('IntegrationCreated', %s, %s, %s, %s, %s)",
        (connection_id, enterprise, name, "gAAAA-" + name, key_of(name)),
    )
    conn.execute(
        "select public.connection_discovered(%s, %s, %s::jsonb)",
        (
            connection_id,
            key_of(name),
            json.dumps([{"id": enterprise, "chain_id": chain, "name": name}]),
        ),
    )
    return connection_id


def webhook(
    conn: psycopg.Connection, enterprise: str | None, integration: str | None, n: int
) -> int:
    body = json.dumps(
        {
            "EnterpriseId": enterprise,
            "IntegrationId": integration,
            "Events": [{"Discriminator": "CustomerUpdated", "Value": {"Id": str(uuid.uuid4())}}],
            "n": n,
        }
    )
    return int(
        scalar(
            conn,
            "select (public.inbox_add('general_webhook', %s, %s, '[]', null, %s))->>'id'",
            (body, enterprise, integration),
        )
    )


def claim(conn: psycopg.Connection, enterprises: list[str], integration: str | None) -> list[int]:
    rows = scalar(
        conn,
        "select public.inbox_claim(100, 300, %s::jsonb, %s)",
        (json.dumps(enterprises), integration),
    )
    return sorted(int(r["id"]) for r in rows)


def test_events_go_to_the_connection_covering_their_enterprise(conn: psycopg.Connection) -> None:
    alpha = connect(conn, "alpha", ENTERPRISE_ID, CHAIN_ID)
    beta = connect(conn, "beta", OTHER_ENTERPRISE_ID, OTHER_CHAIN_ID)
    for_alpha = webhook(conn, ENTERPRISE_ID, alpha, 1)
    for_beta = webhook(conn, OTHER_ENTERPRISE_ID, beta, 2)
    frame = int(
        scalar(
            conn,
            "select (public.inbox_add('websocket', '{\"Events\": []}', null, '[]', null, %s))->>'id'",
            (beta,),
        )
    )
    assert claim(conn, [ENTERPRISE_ID], None) == [for_alpha]
    # beta's pass: its enterprise, then its own frames that name no enterprise
    assert claim(conn, [OTHER_ENTERPRISE_ID], None) == [for_beta]
    assert claim(conn, [OTHER_ENTERPRISE_ID], beta) == [frame]
    assert claim(conn, [ENTERPRISE_ID], alpha) == []


def test_events_nobody_covers_are_kept_and_reported(conn: psycopg.Connection) -> None:
    connect(conn, "alpha", ENTERPRISE_ID, CHAIN_ID)
    stranger = str(uuid.uuid4())
    orphan = webhook(conn, stranger, str(uuid.uuid4()), 1)
    stats = scalar(conn, "select public.inbox_stats()")
    assert stats["unrouted"] == {"events": 1, "enterprises": [stranger]}
    assert orphan not in claim(conn, [ENTERPRISE_ID], None)
    assert (
        scalar(conn, "select status from public.event_inbox where id = %s", (orphan,)) == "pending"
    )
    # once a connection covers that enterprise, its events are served
    later = connect(conn, "late", stranger, str(uuid.uuid4()))
    assert scalar(conn, "select public.inbox_stats()->'unrouted'->>'events'") == "0"
    assert claim(conn, [stranger], later) == [orphan]


def test_a_disabled_connections_events_wait_and_are_reported(conn: psycopg.Connection) -> None:
    alpha = connect(conn, "alpha", ENTERPRISE_ID, CHAIN_ID)
    webhook(conn, ENTERPRISE_ID, alpha, 1)
    conn.execute("select public.connection_set_status(%s, 'disabled')", (alpha,))
    assert scalar(conn, "select public.inbox_stats()->'unrouted'->>'events'") == "1"


def test_health_per_connection(conn: psycopg.Connection) -> None:
    alpha = connect(conn, "alpha", ENTERPRISE_ID, CHAIN_ID)
    beta = connect(conn, "beta", OTHER_ENTERPRISE_ID, OTHER_CHAIN_ID)
    conn.execute("select public.rate_limit_acquire(%s, 200, 30000)", (key_of("alpha"),))
    conn.execute("select public.rate_limit_pause(%s, 1)", (key_of("alpha"),))
    conn.execute(
        "select public.token_unauthorized(%s, 'HTTP 401 Invalid AccessToken')", (key_of("beta"),)
    )
    conn.execute(
        "select public.checkpoint_save(%s, 'customers', 'poll', %s)",
        (CHAIN_ID, "2026-01-01T00:00:00Z"),
    )
    conn.execute(
        "insert into public.quarantine (entity, scope_id, mews_id, raw, reason)"
        " values ('customers', %s, %s, '{}', 'mapping: bad')",
        (CHAIN_ID, str(uuid.uuid4())),
    )
    health = {h["integration_id"]: h for h in scalar(conn, "select public.connections_health()")}
    assert health[alpha]["status"] == "active"
    assert health[alpha]["requests_last_30s"] == 1
    assert health[alpha]["rate_limited"] == 1
    assert health[alpha]["quarantined"] == 1
    assert health[alpha]["lag_seconds"] > 0
    assert health[beta]["status"] == "unauthorized"
    assert health[beta]["unauthorized"] == 1
    assert "Invalid AccessToken" in health[beta]["unauthorized_error"]  # the service sees why


def test_last_poll_at_is_the_last_poll_that_polled_everything(conn: psycopg.Connection) -> None:
    alpha = connect(conn, "alpha", ENTERPRISE_ID, CHAIN_ID)

    def poll(status: str, ago: str) -> None:
        conn.execute(
            "insert into public.sync_runs (job, connection_id, status, started_at, finished_at)"
            " values ('poll_changes', %s, %s, now() - %s::interval, now() - %s::interval)",
            (alpha, status, ago, ago),
        )

    def last_poll_at() -> Any:
        (health,) = scalar(conn, "select public.connections_health(%s)", (alpha,))
        return health["last_poll_at"]

    poll("partial", "1 minute")
    assert last_poll_at() is None  # a partial poll left work: not a poll of everything
    poll("succeeded", "10 minutes")
    poll("partial", "2 minutes")
    succeeded = scalar(
        conn,
        "select to_jsonb(finished_at) from public.sync_runs where connection_id = %s"
        " and status = 'succeeded'",
        (alpha,),
    )
    assert last_poll_at() == succeeded


def test_staff_read_their_connection_health_only_and_never_a_token(
    conn: psycopg.Connection,
) -> None:
    alpha = connect(conn, "alpha", ENTERPRISE_ID, CHAIN_ID)
    connect(conn, "beta", OTHER_ENTERPRISE_ID, OTHER_CHAIN_ID)
    conn.execute(
        "select public.token_unauthorized(%s, 'HTTP 401 secret detail')", (key_of("alpha"),)
    )
    alpha_staff = add_user(conn, enterprise_id=ENTERPRISE_ID)
    with as_role(conn, "authenticated", alpha_staff):
        seen = scalar(conn, "select public.connections_health()")
        assert [h["integration_id"] for h in seen] == [alpha]
        text = json.dumps(seen)
        for secret in ("gAAAA", "mews:", "secret detail"):
            assert secret not in text
        # the table itself: status columns only, never the token or its hash
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select access_token_encrypted from public.connections")
    with (
        as_role(conn, "authenticated", alpha_staff),
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("select token_key from public.connections")
    with as_role(conn, "authenticated", alpha_staff):
        assert scalar(conn, "select count(*) from public.connections") == 1
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select public.connection_claim('poll_changes', 'attacker', 10)")


def test_an_admin_of_another_hotel_sees_nothing_of_this_one(conn: psycopg.Connection) -> None:
    alpha = connect(conn, "alpha", ENTERPRISE_ID, CHAIN_ID)
    beta_admin = add_user(conn, enterprise_id=OTHER_ENTERPRISE_ID, role="admin")
    with as_role(conn, "authenticated", beta_admin):
        assert scalar(conn, "select public.connections_health()") == []
        assert scalar(conn, "select public.connections_health(%s)", (alpha,)) == []
        assert scalar(conn, "select count(*) from public.connections") == 0
    for attempt in (
        "select public.connection_set_status(%s, 'disabled')",
        "select public.connection_discovered(%s, 'mews:x', '[]')",
        "select public.connection_release('poll_changes', %s, 'x', 'failed')",
        "update public.connections set status = 'disabled' where integration_id = %s",
        "select * from public.connection_jobs where integration_id = %s",
    ):
        with (
            as_role(conn, "authenticated", beta_admin),
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            conn.execute(attempt, (alpha,))
    with as_role(conn, "anon"), pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("select public.connections_health()")
    assert (
        scalar(conn, "select status from public.connections where integration_id = %s", (alpha,))
        == "active"
    )
