"""public.sync_status: sync health per enterprise, and what needs attention, for the service
(everything) and for staff (their enterprises, through row-level security, no token hashes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.support.rows import CHAIN_ID, ENTERPRISE_ID, OTHER_CHAIN_ID, OTHER_ENTERPRISE_ID
from tests.support.tenancy import add_user, as_role, seed_tenancy


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        seed_tenancy(conn)
        yield conn


def status(conn: psycopg.Connection, enterprise: str | None = None) -> dict[str, Any]:
    row = conn.execute("select public.sync_status(%s)", (enterprise,)).fetchone()
    assert row is not None
    return dict(row[0])


def of(answer: dict[str, Any], enterprise: str) -> dict[str, Any]:
    (found,) = [e for e in answer["enterprises"] if e["id"] == enterprise]
    return dict(found)


def checks(conn: psycopg.Connection, enterprise: str = ENTERPRISE_ID) -> list[str]:
    return [a["check"] for a in of(status(conn), enterprise)["attention"]]


def run(
    conn: psycopg.Connection,
    job: str,
    run_status: str,
    *,
    scope: str | None = None,
    ago: str = "1 minute",
) -> None:
    conn.execute(
        "insert into public.sync_runs (job, scope_id, status, started_at, finished_at, error)"
        " values (%s, %s, %s, now() - %s::interval, now() - %s::interval, %s)",
        (job, scope, run_status, ago, ago, f"{job} said {run_status}"),
    )


def inbox(conn: psycopg.Connection, enterprise: str | None, inbox_status: str, ago: str) -> None:
    body = json.dumps({"Events": [], "EnterpriseId": enterprise, "n": ago + inbox_status})
    conn.execute(
        "insert into public.event_inbox (source, enterprise_id, body_raw, body, body_hash, status,"
        " received_at) values ('general_webhook', %s, %s, %s::jsonb, md5(%s), %s, now() - %s::interval)",
        (enterprise, body, body, body, inbox_status, ago),
    )


def poll_checkpoint(conn: psycopg.Connection, scope: str, entity: str, ago: str) -> None:
    conn.execute(
        "insert into public.sync_checkpoints (scope_id, entity, phase, high_water_utc)"
        " values (%s, %s, 'poll', now() - %s::interval)",
        (scope, entity, ago),
    )


def healthy(conn: psycopg.Connection) -> None:
    run(conn, "poll_changes", "succeeded")
    poll_checkpoint(conn, CHAIN_ID, "customers", "2 minutes")
    poll_checkpoint(conn, ENTERPRISE_ID, "reservations", "5 minutes")


def test_a_healthy_enterprise_needs_nothing_and_shows_its_figures(conn: psycopg.Connection) -> None:
    healthy(conn)
    inbox(conn, ENTERPRISE_ID, "pending", "1 minute")
    conn.execute(
        "insert into public.conflict_log (chain_id, guest_mews_id, field, resolution)"
        " values (%s, gen_random_uuid(), 'email', 'mews_won')",
        (CHAIN_ID,),
    )
    mine = of(status(conn), ENTERPRISE_ID)
    assert mine["attention"] == []
    assert (mine["inbox"]["waiting"], mine["inbox"]["dead"], mine["conflicts_7d"]) == (1, 0, 1)
    assert (mine["poll"]["entities"], mine["poll"]["stalest_entity"]) == (2, "reservations")
    assert 100 <= mine["poll"]["lag_seconds"] <= 200
    assert [r["job"] for r in mine["runs"]] == ["poll_changes"]


@pytest.mark.parametrize(
    ("make", "check"),
    [
        (lambda c: inbox(c, ENTERPRISE_ID, "dead", "1 hour"), "dead_letters"),
        (
            lambda c: c.execute("select public.token_unauthorized('mews:abc', '401')"),
            "token_unauthorized",
        ),
        (lambda c: run(c, "push_changes", "failed"), "failed_run"),
        (lambda c: run(c, "backfill", "abandoned", scope=CHAIN_ID), "failed_run"),
        (lambda c: run(c, "push_changes", "partial"), "partial_run"),
        (lambda c: inbox(c, None, "pending", "20 minutes"), "inbox_waiting"),
        (
            lambda c: c.execute(
                "update public.sync_checkpoints set high_water_utc = now() - interval '31 minutes'"
            ),
            "lag",
        ),
    ],
)
def test_each_kind_of_trouble_needs_attention(
    conn: psycopg.Connection, make: Any, check: str
) -> None:
    healthy(conn)
    make(conn)
    assert checks(conn) == [check]


def test_only_the_last_run_of_a_job_counts(conn: psycopg.Connection) -> None:
    healthy(conn)
    run(conn, "push_changes", "failed", ago="10 minutes")
    run(conn, "push_changes", "succeeded", ago="1 minute")
    assert checks(conn) == []


def test_a_refused_token_that_was_replaced_needs_nothing(conn: psycopg.Connection) -> None:
    healthy(conn)
    conn.execute("select public.token_unauthorized('mews:old', '401')")
    conn.execute("select public.rate_limit_acquire('mews:new', 190, 30500)")
    tokens = of(status(conn), ENTERPRISE_ID)["tokens"]
    assert [(t["key"], t["superseded"], t["used_last_30s"]) for t in tokens] == [
        ("mews:old", True, 0),
        ("mews:new", False, 1),
    ]
    assert checks(conn) == []


def test_another_enterprises_inbox_does_not_count(conn: psycopg.Connection) -> None:
    healthy(conn)
    inbox(conn, OTHER_ENTERPRISE_ID, "dead", "1 hour")
    assert checks(conn) == []
    assert checks(conn, OTHER_ENTERPRISE_ID) == ["dead_letters"]


def test_staff_see_their_enterprise_only_without_token_hashes_or_foreign_errors(
    conn: psycopg.Connection,
) -> None:
    healthy(conn)
    run(conn, "reconcile", "failed", scope=OTHER_CHAIN_ID)
    # the enterprise's connection, whose token Mews refuses
    conn.execute(
        "select public.connection_apply('IntegrationCreated', gen_random_uuid(), %s, 'Alpha',"
        " 'gAAAA-alpha', 'mews:abc')",
        (ENTERPRISE_ID,),
    )
    conn.execute("select public.token_unauthorized('mews:abc', 'Invalid token 1234')")
    staff = add_user(conn, enterprise_id=ENTERPRISE_ID, role="staff")
    with as_role(conn, "authenticated", staff):
        answer = status(conn)
        other = status(conn, OTHER_ENTERPRISE_ID)
    assert [e["id"] for e in answer["enterprises"]] == [ENTERPRISE_ID]
    assert other["enterprises"] == []
    text = json.dumps(answer)
    assert "mews:abc" not in text
    assert "Invalid token" not in text
    assert "reconcile" not in text
    mine = answer["enterprises"][0]
    assert [r["error"] for r in mine["runs"]] == [None]  # a run of no enterprise: status only
    assert [a["check"] for a in mine["attention"]] == ["token_unauthorized"]


def test_the_service_sees_every_enterprise(conn: psycopg.Connection) -> None:
    with as_role(conn, "service_role"):
        answer = status(conn)
    assert {e["id"] for e in answer["enterprises"]} == {ENTERPRISE_ID, OTHER_ENTERPRISE_ID}


def test_anon_cannot_read_the_status(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege), as_role(conn, "anon"):
        status(conn)


def test_the_private_part_is_nothing_for_an_enterprise_the_caller_cannot_read(
    conn: psycopg.Connection,
) -> None:
    staff = add_user(conn, enterprise_id=ENTERPRISE_ID, role="staff")
    with as_role(conn, "authenticated", staff):
        row = conn.execute("select app.sync_private_health(%s)", (OTHER_ENTERPRISE_ID,)).fetchone()
    assert row == (None,)


def first_load_begun(conn: psycopg.Connection, scope: str, entity: str) -> None:
    conn.execute(
        "insert into public.sync_checkpoints (scope_id, entity, phase, low_water_utc, state)"
        " values (%s, %s, 'backfill', now() - interval '2 years', '{\"done\": [\"a\", \"b\"]}')",
        (scope, entity),
    )


def running(
    conn: psycopg.Connection, job: str, *, heartbeat: str, session: str | None = None
) -> None:
    conn.execute(
        "insert into public.sync_runs (job, scope_id, heartbeat_at, owner, session_id)"
        " values (%s, null, now() - %s::interval, 'host:42', %s)",
        (job, heartbeat, session),
    )


def test_a_first_load_that_has_not_completed_needs_attention(conn: psycopg.Connection) -> None:
    """The data is incomplete while a first load that began has not finished: said with the
    entity and the windows done, for staff too (it is their chain's checkpoint)."""
    healthy(conn)
    first_load_begun(conn, CHAIN_ID, "customers")
    assert checks(conn) == ["first_load"]
    [item] = of(status(conn), ENTERPRISE_ID)["attention"]
    assert "first load of customers has not completed" in item["message"]
    assert "2 window(s) done" in item["message"]
    assert checks(conn, OTHER_ENTERPRISE_ID) == []
    staff = add_user(conn, enterprise_id=ENTERPRISE_ID, role="staff")
    with as_role(conn, "authenticated", staff):
        assert [a["check"] for a in status(conn)["enterprises"][0]["attention"]] == ["first_load"]
    conn.execute(
        "update public.sync_checkpoints set high_water_utc = now() where phase = 'backfill'"
    )
    assert checks(conn) == []


def test_a_run_recorded_running_whose_process_is_gone_needs_attention(
    conn: psycopg.Connection,
) -> None:
    """A run whose session lock nobody holds died: said at once, with its process for the
    service; a live one (its lock held, or a fresh heartbeat) is shown running, nothing more."""
    healthy(conn)
    running(conn, "reconcile", heartbeat="1 second", session="00000000-0000-4000-8000-000000000001")
    assert checks(conn) == ["dead_run"]
    [item] = of(status(conn), ENTERPRISE_ID)["attention"]
    assert "its process is gone (host:42)" in item["message"]
    runs = {r["job"]: r for r in of(status(conn), ENTERPRISE_ID)["runs"]}
    assert (runs["reconcile"]["status"], runs["reconcile"]["gone"]) == ("running", True)

    with psycopg.connect(conn.info.dsn, autocommit=True) as holder:
        holder.execute(
            "select pg_advisory_lock(app.session_key('00000000-0000-4000-8000-000000000001'))"
        )
        assert checks(conn) == []
    assert checks(conn) == ["dead_run"]


def test_a_run_without_a_session_whose_heartbeat_stopped_needs_attention(
    conn: psycopg.Connection,
) -> None:
    healthy(conn)
    running(conn, "push_changes", heartbeat="10 seconds")
    assert checks(conn) == []
    conn.execute("update public.sync_runs set heartbeat_at = now() - interval '6 minutes'")
    assert checks(conn) == ["dead_run"]
    [item] = of(status(conn), ENTERPRISE_ID)["attention"]
    assert "has not heartbeat since" in item["message"]
