"""The attack: a staff member (or an admin) of hotel B calls every health and status function and
reads every table and view their login may read, looking for anything of hotel A — its ids, its
name, its tokens' budget and refusals, its runs, its inbox, its quarantined records — also
through a portfolio connection (one token covering both hotels). Logins are simulated as
PostgREST applies them (tests/support/tenancy.py: `set local role` plus the JWT claims)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.connections.test_claims import key_of
from tests.support.rows import CHAIN_ID, ENTERPRISE_ID, OTHER_CHAIN_ID, OTHER_ENTERPRISE_ID
from tests.support.tenancy import add_user, as_role, seed_tenancy

# what would betray hotel A (its ids, its names as seed_tenancy writes them, its secrets)
A_ERROR = "alpha-private-error-text"
A_MARKERS = (ENTERPRISE_ID, CHAIN_ID, "Alpha Prague", "Alpha Hotels", A_ERROR, "mews:")

# every function an API login may call that tells the health or status of the sync: the attack
# calls each (a new one fails test_every_health_function_is_attacked until it is added here)
HEALTH_FUNCTIONS = {
    "app.sync_first_loads_open(uuid,uuid)",
    "app.sync_last_runs(uuid[],boolean)",
    "app.sync_private_health(uuid)",
    "public.connections_health(uuid)",
    "public.quality_report(uuid,integer,integer)",
    "public.sync_status(uuid)",
}
HEALTH_NAME = re.compile(
    r"health|status|report|^(sync|connection|inbox|rate_limit|runs?_|lease|token|quarantine)"
)


def scalar(conn: psycopg.Connection, sql: str, params: Any = None) -> Any:
    row = conn.execute(sql, params).fetchone()
    return row[0] if row else None


def connection(conn: psycopg.Connection, name: str, enterprise: str) -> str:
    """A connection created by an IntegrationCreated naming ``enterprise``."""
    connection_id = str(uuid.uuid4())
    conn.execute(
        "select public.connection_apply('IntegrationCreated', %s, %s, %s, %s, %s)",
        (connection_id, enterprise, name, "gAAAA-" + name, key_of(name)),
    )
    return connection_id


def discovered(conn: psycopg.Connection, connection_id: str, name: str, *hotels: str) -> None:
    names = {
        ENTERPRISE_ID: ("Alpha Prague", CHAIN_ID),
        OTHER_ENTERPRISE_ID: ("Beta Lisbon", OTHER_CHAIN_ID),
    }
    enterprises = [{"id": h, "name": names[h][0], "chain_id": names[h][1]} for h in hotels]
    conn.execute(
        "select public.connection_discovered(%s, %s, %s::jsonb, %s)",
        (connection_id, key_of(name), json.dumps(enterprises), len(hotels) > 1),
    )


def requests(conn: psycopg.Connection, name: str, n: int) -> None:
    for _ in range(n):
        conn.execute("select public.rate_limit_acquire(%s, 200, 30000)", (key_of(name),))


def run(
    conn: psycopg.Connection,
    job: str,
    status: str,
    *,
    scope: str | None = None,
    connection_id: str | None = None,
    ago: str = "1 minute",
) -> str:
    return str(
        scalar(
            conn,
            "insert into public.sync_runs (job, scope_id, connection_id, status, started_at,"
            " finished_at, error) values (%s, %s, %s, %s, now() - %s::interval,"
            " now() - %s::interval, %s) returning id",
            (job, scope, connection_id, status, ago, ago, A_ERROR if status == "failed" else None),
        )
    )


def inbox(
    conn: psycopg.Connection,
    enterprise: str | None,
    status: str,
    ago: str,
    integration: str | None = None,
) -> None:
    body = json.dumps({"EnterpriseId": enterprise, "Events": [], "n": str(uuid.uuid4())})
    conn.execute(
        "insert into public.event_inbox (source, enterprise_id, integration_id, body_raw, body,"
        " body_hash, status, received_at) values ('general_webhook', %s, %s, %s, %s::jsonb,"
        " md5(%s), %s, now() - %s::interval)",
        (enterprise, integration, body, body, body, status, ago),
    )


def quarantined(conn: psycopg.Connection, scope: str | None, run_id: str | None = None) -> None:
    conn.execute(
        "insert into public.quarantine (entity, scope_id, mews_id, raw, reason, run_id)"
        " values ('customers', %s, gen_random_uuid(), '{}', 'mapping: bad', %s)",
        (scope, run_id),
    )


def checkpoint(conn: psycopg.Connection, scope: str, ago: str) -> None:
    conn.execute(
        "insert into public.sync_checkpoints (scope_id, entity, phase, high_water_utc)"
        " values (%s, 'customers', 'poll', now() - %s::interval)",
        (scope, ago),
    )


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    """Hotel A in trouble everywhere; hotel B healthy; a portfolio token covering both."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        seed_tenancy(conn)
        alpha = connection(conn, "alpha", ENTERPRISE_ID)
        discovered(conn, alpha, "alpha", ENTERPRISE_ID)
        beta = connection(conn, "beta", OTHER_ENTERPRISE_ID)
        discovered(conn, beta, "beta", OTHER_ENTERPRISE_ID)
        # the portfolio's IntegrationCreated named hotel A; Mews says it covers both
        portfolio = connection(conn, "portfolio", ENTERPRISE_ID)
        discovered(conn, portfolio, "portfolio", ENTERPRISE_ID, OTHER_ENTERPRISE_ID)
        # A's token: busy, paused, then refused by Mews
        requests(conn, "alpha", 3)
        conn.execute("select public.rate_limit_pause(%s, 600)", (key_of("alpha"),))
        conn.execute("select public.token_unauthorized(%s, %s)", (key_of("alpha"), A_ERROR))
        requests(conn, "beta", 1)
        requests(conn, "portfolio", 2)
        # A's runs fail: of its enterprise, of its chain, of its connection (the newest)
        run(conn, "reconcile", "failed", scope=ENTERPRISE_ID)
        run(conn, "backfill", "abandoned", scope=CHAIN_ID)
        run(conn, "poll_changes", "succeeded", connection_id=beta, ago="5 minutes")
        alpha_run = run(conn, "poll_changes", "failed", connection_id=alpha)
        run(conn, "score", "succeeded", ago="3 minutes")  # a deployment-wide job
        conn.execute(
            "insert into public.connection_jobs (integration_id, job, last_status, last_error)"
            " values (%s, 'poll_changes', 'failed', %s)",
            (alpha, A_ERROR),
        )
        # A's inbox: waiting long, dead letters, a frame of its connection naming no enterprise
        inbox(conn, ENTERPRISE_ID, "pending", "2 hours")
        inbox(conn, ENTERPRISE_ID, "dead", "3 hours")
        inbox(conn, None, "pending", "1 hour", integration=alpha)
        inbox(conn, OTHER_ENTERPRISE_ID, "pending", "10 seconds")
        # A's quarantine: its enterprise, its chain, and records of its connection's run
        quarantined(conn, ENTERPRISE_ID)
        quarantined(conn, CHAIN_ID)
        quarantined(conn, None, alpha_run)
        quarantined(conn, None, alpha_run)
        quarantined(conn, OTHER_CHAIN_ID)
        checkpoint(conn, CHAIN_ID, "3 hours")
        checkpoint(conn, OTHER_CHAIN_ID, "1 minute")
        conn.execute(  # A's first load of reservations, begun and not finished
            "insert into public.sync_checkpoints (scope_id, entity, phase, low_water_utc)"
            " values (%s, 'reservations', 'backfill', now() - interval '1 day')",
            (ENTERPRISE_ID,),
        )
        yield conn


def readable_relations(conn: psycopg.Connection) -> dict[str, list[str]]:
    """Every table and view of public and app that `authenticated` may read, with the columns
    it may read (a column grant reads only those)."""
    rows = conn.execute(
        "select format('%I.%I', n.nspname, c.relname), array_agg(quote_ident(a.attname) order by a.attnum)"
        " from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped"
        " where n.nspname in ('public', 'app') and c.relkind in ('r', 'v', 'm', 'p')"
        "   and has_column_privilege('authenticated', c.oid, a.attnum, 'SELECT')"
        " group by 1 order by 1"
    ).fetchall()
    return {name: list(columns) for name, columns in rows}


def everything_seen(conn: psycopg.Connection, user: str) -> dict[str, Any]:
    """What the login gets from every health function and every relation it may read."""
    seen: dict[str, Any] = {}
    with as_role(conn, "authenticated", user):
        for enterprise in (ENTERPRISE_ID, OTHER_ENTERPRISE_ID, None):
            seen[f"sync_status({enterprise})"] = scalar(
                conn, "select public.sync_status(%s)", (enterprise,)
            )
        for enterprise in (ENTERPRISE_ID, OTHER_ENTERPRISE_ID):
            seen[f"sync_private_health({enterprise})"] = scalar(
                conn, "select app.sync_private_health(%s)", (enterprise,)
            )
            seen[f"quality_report({enterprise})"] = scalar(
                conn, "select public.quality_report(%s)", (enterprise,)
            )
        for scopes in ([ENTERPRISE_ID, CHAIN_ID], [OTHER_ENTERPRISE_ID, OTHER_CHAIN_ID], None):
            seen[f"sync_last_runs({scopes})"] = scalar(
                conn, "select app.sync_last_runs(%s::uuid[], true)", (scopes,)
            )
        for pair in ((ENTERPRISE_ID, CHAIN_ID), (OTHER_ENTERPRISE_ID, OTHER_CHAIN_ID)):
            seen[f"sync_first_loads_open{pair}"] = scalar(
                conn, "select app.sync_first_loads_open(%s, %s)", pair
            )
        seen["connections_health()"] = scalar(conn, "select public.connections_health()")
        for connection_id in (
            scalar(conn, "select array_agg(integration_id::text) from public.connections") or []
        ):
            seen[f"connections_health({connection_id})"] = scalar(
                conn, "select public.connections_health(%s)", (connection_id,)
            )
        for relation, columns in readable_relations(conn).items():
            seen[relation] = conn.execute(
                f"select json_agg(json_build_array({', '.join(columns)})) from {relation}"
            ).fetchone()
    return seen


@pytest.fixture(params=["staff", "admin"])
def beta_user(request: pytest.FixtureRequest, conn: psycopg.Connection) -> str:
    return add_user(conn, enterprise_id=OTHER_ENTERPRISE_ID, role=request.param)


def test_a_login_of_hotel_b_sees_no_first_load_of_hotel_a(
    conn: psycopg.Connection, beta_user: str
) -> None:
    seen = everything_seen(conn, beta_user)
    assert seen[f"sync_first_loads_open{(ENTERPRISE_ID, CHAIN_ID)}"] == []
    with as_role(conn, "authenticated", add_user(conn, enterprise_id=ENTERPRISE_ID)):
        opened = scalar(conn, "select app.sync_first_loads_open(%s, %s)", (ENTERPRISE_ID, CHAIN_ID))
    assert [load["entity"] for load in opened] == ["reservations"]  # A's own staff see it


def test_every_health_function_is_attacked(conn: psycopg.Connection) -> None:
    """Each function a login may call whose name speaks of health, status, runs, the inbox,
    tokens or connections is in HEALTH_FUNCTIONS (app.sync_attention is pure: no data)."""
    callable_by_logins = conn.execute(
        "select n.nspname || '.' || p.proname from pg_proc p"
        " join pg_namespace n on n.oid = p.pronamespace"
        " where n.nspname in ('public', 'app')"
        "   and has_function_privilege('authenticated', p.oid, 'EXECUTE')"
    ).fetchall()
    health = {f for (f,) in callable_by_logins if HEALTH_NAME.search(f.split(".", 1)[1])}
    assert health - {"app.sync_attention"} == {f.split("(")[0] for f in HEALTH_FUNCTIONS}


def test_a_login_of_hotel_b_sees_nothing_of_hotel_a(
    conn: psycopg.Connection, beta_user: str
) -> None:
    seen = everything_seen(conn, beta_user)
    leaks = {
        where: marker
        for where, value in seen.items()
        for marker in A_MARKERS
        if marker in json.dumps(value)
    }
    assert leaks == {}


def test_hotel_bs_sync_status_counts_only_hotel_b(conn: psycopg.Connection, beta_user: str) -> None:
    with as_role(conn, "authenticated", beta_user):
        answer = scalar(conn, "select public.sync_status()")
        not_mine = scalar(conn, "select public.sync_status(%s)", (ENTERPRISE_ID,))
        private = scalar(conn, "select app.sync_private_health(%s)", (ENTERPRISE_ID,))
    (mine,) = answer["enterprises"]
    assert (not_mine["enterprises"], private) == ([], None)
    assert mine["id"] == OTHER_ENTERPRISE_ID
    # its own token and the portfolio's; never A's refused, paused token
    assert sorted(t["used_last_30s"] for t in mine["tokens"]) == [1, 2]
    assert [t["unauthorized_since"] for t in mine["tokens"]] == [None, None]
    assert [t["paused_until"] for t in mine["tokens"]] == [None, None]
    assert (mine["inbox"]["waiting"], mine["inbox"]["dead"]) == (1, 0)
    assert mine["inbox"]["oldest_waiting_seconds"] < 600
    assert {(r["job"], r["status"]) for r in mine["runs"]} == {
        ("poll_changes", "succeeded"),  # its connection's, not A's newer failed one
        ("score", "succeeded"),  # a deployment-wide job: status only
    }
    assert (mine["quarantine_open"], mine["quarantine_unscoped"]) == (1, 0)
    assert mine["attention"] == []


def test_a_portfolio_shows_hotel_b_only_its_own_part(
    conn: psycopg.Connection, beta_user: str
) -> None:
    with as_role(conn, "authenticated", beta_user):
        health = scalar(conn, "select public.connections_health()")
        rows = conn.execute("select integration_id from public.connections").fetchall()
    by_portfolio = {h["is_portfolio"]: h for h in health}
    assert sorted(by_portfolio) == [False, True]
    portfolio = by_portfolio[True]
    assert portfolio["enterprise_ids"] == [OTHER_ENTERPRISE_ID]
    assert portfolio["chain_ids"] == [OTHER_CHAIN_ID]
    assert portfolio["name"] is None  # it lists both hotels' names
    assert portfolio["quarantined"] == 1  # B's, not A's three
    assert portfolio["lag_seconds"] < 600  # B's checkpoint, not A's three hours
    assert portfolio["requests_last_30s"] == 2  # the shared token's budget is B's too
    assert by_portfolio[False]["name"] == "beta"
    # the table shows only a connection that names nothing but B's
    assert [str(r[0]) for r in rows] == [by_portfolio[False]["integration_id"]]


def test_the_service_still_sees_every_hotel(conn: psycopg.Connection) -> None:
    with as_role(conn, "service_role"):
        health = scalar(conn, "select public.connections_health()")
        status = scalar(conn, "select public.sync_status(%s)", (ENTERPRISE_ID,))
    portfolio = next(h for h in health if h["is_portfolio"])
    assert sorted(portfolio["enterprise_ids"]) == sorted([ENTERPRISE_ID, OTHER_ENTERPRISE_ID])
    assert portfolio["quarantined"] == 3
    (alpha,) = status["enterprises"]
    assert {a["check"] for a in alpha["attention"]} == {
        "dead_letters",
        "token_unauthorized",
        "failed_run",
        "lag",
        "inbox_waiting",
        "first_load",  # A's reservations, begun and not finished
    }
    assert alpha["quarantine_unscoped"] == 2
