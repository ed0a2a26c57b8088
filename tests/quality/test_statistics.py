"""public.analyze_tables (and its Python helper) analyzes the tables whose statistics are
missing or stale, and only those; only the service may call it; a one-call rescore analyzes the
scores it wrote."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest

from shared.db.store import PsycopgTransport, Store, StoreError
from shared.quality.rules import DEFAULT_RULES
from shared.quality.statistics import SCORING_INPUTS, analyze_tables
from tests.quality.conftest import enable_rules, insert_many
from tests.support.rows import ENTERPRISE_ID
from tests.support.tenancy import as_role, seed_tenancy

pytestmark = pytest.mark.anyio


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        seed_tenancy(connection)
        insert_many(connection, 300)
        yield connection


@pytest.fixture
async def store(database_url: str, conn: psycopg.Connection) -> AsyncIterator[Store]:
    store = Store(await PsycopgTransport.connect(database_url, max_size=2))
    yield store
    await store.aclose()


def reltuples(conn: psycopg.Connection, table: str) -> float:
    row = conn.execute(
        "select reltuples from pg_class where oid = %s::regclass", (table,)
    ).fetchone()
    assert row is not None
    return float(row[0])


async def test_tables_never_analyzed_are_analyzed_and_then_left_alone(
    conn: psycopg.Connection, store: Store
) -> None:
    assert reltuples(conn, "public.guests") < 0  # a fresh load: the planner knows nothing
    first = await analyze_tables(store, SCORING_INPUTS)
    assert set(first) == {f"public.{t}" for t in SCORING_INPUTS}
    assert reltuples(conn, "public.guests") == 300
    assert await analyze_tables(store, SCORING_INPUTS) == []


async def test_a_large_share_written_is_analyzed_a_small_one_is_not(
    conn: psycopg.Connection, store: Store
) -> None:
    await analyze_tables(store, ["guests"])
    assert await analyze_tables(store, {"guests": 20}) == []  # under 10 % of 300
    insert_many(conn, 200, offset=300)
    assert await analyze_tables(store, {"guests": 200}) == ["public.guests"]
    assert reltuples(conn, "public.guests") == 500


def test_a_one_call_rescore_leaves_the_statistics_of_its_scores_current(
    conn: psycopg.Connection,
) -> None:
    enable_rules(conn, ENTERPRISE_ID, [r.model_dump() for r in DEFAULT_RULES])
    assert reltuples(conn, "public.guest_scores") < 0
    conn.execute("select public.quality_rescore(%s)", (ENTERPRISE_ID,))
    assert reltuples(conn, "public.guest_scores") == 300


async def test_unknown_tables_and_other_schemas_are_refused(store: Store) -> None:
    for name in ("no_such_table", "pg_catalog.pg_class", "guests; drop table guests"):
        with pytest.raises(StoreError) as refused:
            await analyze_tables(store, [name])
        assert refused.value.code == "22023"


def test_only_the_service_may_analyze(conn: psycopg.Connection) -> None:
    for role in ("anon", "authenticated"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege), as_role(conn, role):
            conn.execute("select public.analyze_tables('{\"guests\": null}')")
    with as_role(conn, "service_role"):
        conn.execute("select public.analyze_tables('{\"guests\": null}')")
