"""The score job scores each enterprise in its own unit: one enterprise the database refuses to
score costs only itself (recorded, named, tried again later and later), never the others."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from shared.cli import app
from shared.db.store import PsycopgTransport, Store
from shared.quality.job import score_profiles
from shared.quality.rules import DEFAULT_RULES
from shared.sync.runs import Run
from tests.quality.conftest import enable_rules, insert_many
from tests.support.rows import CHAIN_ID, ENTERPRISE_ID, OTHER_CHAIN_ID, OTHER_ENTERPRISE_ID
from tests.support.tenancy import seed_tenancy

pytestmark = pytest.mark.anyio
BROKEN = "("  # PostgreSQL refuses to compile it when it scores the first e-mail


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        seed_tenancy(connection)
        for chain, enterprise in ((CHAIN_ID, ENTERPRISE_ID), (OTHER_CHAIN_ID, OTHER_ENTERPRISE_ID)):
            insert_many(connection, 40, chain_id=chain)
            enable_rules(connection, enterprise, [r.model_dump() for r in DEFAULT_RULES])
        break_scoring_of(connection, ENTERPRISE_ID)
        yield connection


@pytest.fixture
async def store(database_url: str, conn: psycopg.Connection) -> AsyncIterator[Store]:
    store = Store(await PsycopgTransport.connect(database_url, max_size=4))
    yield store
    await store.aclose()


def break_scoring_of(conn: psycopg.Connection, enterprise: str) -> None:
    """The enabled set of ``enterprise`` gets a rule the database cannot evaluate (written with
    no trigger, as a set saved by an older version could be)."""
    with conn.transaction():
        conn.execute("set local session_replication_role = replica")
        conn.execute(
            "insert into public.quality_rules (rule_set_id, enterprise_id, field, kind, params, weight)"
            " select id, enterprise_id, 'email', 'pattern', %s, 5 from public.quality_rule_sets"
            " where enterprise_id = %s and status = 'enabled'",
            (json.dumps({"regex": BROKEN}), enterprise),
        )
        conn.execute("delete from app.quality_compiled")


def one(conn: psycopg.Connection, sql: str, *params: Any) -> Any:
    row = conn.execute(sql, params).fetchone()
    assert row is not None
    return row[0]


def scored(conn: psycopg.Connection, enterprise: str) -> int:
    return int(
        one(conn, "select count(*) from public.guest_scores where enterprise_id = %s", enterprise)
    )


def state(conn: psycopg.Connection, enterprise: str) -> dict[str, Any]:
    return dict(
        one(
            conn,
            "select jsonb_build_object('failures', failures, 'last_failure', last_failure,"
            " 'retry_in', extract(epoch from retry_at - now())::integer)"
            " from public.quality_score_state where enterprise_id = %s",
            enterprise,
        )
    )


async def job(store: Store) -> Run:
    run = Run(uuid.uuid4(), "score_profiles")
    await score_profiles(store, run)
    return run


async def test_an_enterprise_that_cannot_be_scored_costs_only_itself(
    conn: psycopg.Connection, store: Store
) -> None:
    run = await job(store)
    assert scored(conn, OTHER_ENTERPRISE_ID) == 40
    assert scored(conn, ENTERPRISE_ID) == 0
    assert run.status == "partial"
    assert run.counts["enterprises_failed"] == 1
    assert run.error is not None
    assert run.error.startswith("Alpha Prague: quality_rescore_pass: invalid regular expression")
    failed = state(conn, ENTERPRISE_ID)
    assert failed["failures"] == 1
    assert "invalid regular expression" in failed["last_failure"]
    assert 13 * 60 < failed["retry_in"] <= 14 * 60  # the next scheduled run, 15 minutes on


async def test_an_enterprise_that_failed_is_left_alone_until_its_time_and_said_so(
    conn: psycopg.Connection, store: Store
) -> None:
    await job(store)
    again = await job(store)
    assert again.status == "partial"
    assert again.counts["enterprises_backing_off"] == 1
    assert "enterprises_failed" not in again.counts
    assert again.error is not None
    assert again.error.startswith("Alpha Prague: not scored until ")
    assert "after 1 failure(s) in a row" in again.error
    assert state(conn, ENTERPRISE_ID)["failures"] == 1  # not tried: not failed again


def test_each_failure_in_a_row_puts_the_next_try_off_twice_as_long_up_to_a_day(
    conn: psycopg.Connection,
) -> None:
    waits = []
    for _ in range(9):
        answer = one(conn, "select public.quality_unit_failed(%s, 'x')", ENTERPRISE_ID)
        waits.append(state(conn, ENTERPRISE_ID)["retry_in"])
        assert answer["failures"] == len(waits)
    minutes = [round(wait / 60) for wait in waits]
    assert minutes == [14, 29, 59, 119, 239, 479, 959, 1439, 1439]


async def test_an_admin_enabling_a_new_set_has_the_enterprise_scored_at_the_next_run(
    conn: psycopg.Connection, store: Store
) -> None:
    await job(store)
    draft = one(
        conn,
        "insert into public.quality_rule_sets (enterprise_id, version, note)"
        " values (%s, 9, 'fixed') returning id",
        ENTERPRISE_ID,
    )
    conn.execute(
        "select public.quality_rules_replace(%s, %s::jsonb)",
        (draft, json.dumps([r.model_dump() for r in DEFAULT_RULES])),
    )
    conn.execute("select public.quality_enable_rule_set(%s, 0)", (draft,))
    assert state(conn, ENTERPRISE_ID)["retry_in"] is None
    run = await job(store)
    assert run.status == "succeeded"
    assert scored(conn, ENTERPRISE_ID) == 40
    assert (
        one(
            conn,
            "select count(*) from public.guest_scores s join public.quality_rules r"
            " on r.id = any (s.failed_rules) where s.enterprise_id = %s",
            ENTERPRISE_ID,
        )
        > 0
    )  # scored by the new set's rules
    assert state(conn, ENTERPRISE_ID)["failures"] == 0


def test_the_score_command_names_what_it_left_and_exits_6(
    conn: psycopg.Connection, database_url: str
) -> None:
    result = CliRunner().invoke(app, ["score"], env={"DATABASE_URL": database_url})
    assert result.exit_code == 6
    assert "error: scoring left work for later: Alpha Prague: quality_rescore_pass: invalid" in (
        " ".join(result.output.split())
    )
    assert scored(conn, OTHER_ENTERPRISE_ID) == 40


def test_retry_times_are_read_with_the_enterprises(conn: psycopg.Connection) -> None:
    conn.execute("select public.quality_unit_failed(%s, 'statement timeout')", (ENTERPRISE_ID,))
    listed = {e["name"]: e for e in one(conn, "select public.quality_enterprises()")}
    assert listed["Alpha Prague"]["backing_off"] is True
    assert listed["Alpha Prague"]["failures"] == 1
    assert listed["Alpha Prague"]["last_failure"] == "statement timeout"
    assert listed["Beta Lisbon"]["backing_off"] is False
