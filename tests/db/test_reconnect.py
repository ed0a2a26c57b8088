"""A lost database connection is told apart from a refusal: reopened and the call repeated when
that is safe, else (or when the database stays away) a ConnectionLostError that names the
database, and the CLI's line says the connection was lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import PoolClosed, PoolTimeout

from shared.cli.errors import ExitCode, explain
from shared.db.connect import open_store
from shared.db.reconnect import connection_lost, safe_to_repeat
from shared.db.store import ConnectionLostError, PsycopgTransport, Store, StoreError
from shared.settings import load_settings
from tests.support.backends import terminated_in
from tests.support.rows import CHAIN_ID, guest_row

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("error", "lost"),
    [
        (psycopg.errors.AdminShutdown("terminating connection due to administrator command"), True),
        (psycopg.errors.CannotConnectNow("the database system is starting up"), True),
        (psycopg.errors.ConnectionFailure("connection failure"), True),
        (psycopg.OperationalError("server closed the connection unexpectedly"), True),
        (PoolTimeout("couldn't get a connection after 30.00 sec"), True),
        (PoolClosed("the pool 'pool-1' is already closed"), False),
        (psycopg.errors.QueryCanceled("canceling statement due to statement timeout"), False),
        (psycopg.errors.UniqueViolation("duplicate key value"), False),
        (psycopg.errors.InsufficientPrivilege("permission denied"), False),
    ],
)
def test_a_lost_connection_is_told_apart_from_a_refusal(error: psycopg.Error, lost: bool) -> None:
    assert connection_lost(error) is lost


@pytest.mark.parametrize(
    ("fn", "read_only", "safe"),
    [
        ("upsert_guests", False, True),
        ("checkpoint_window_done", False, True),
        ("checkpoint_get", True, True),
        ("run_start", False, False),
        ("run_finish", False, False),
        ("quarantine_add", False, False),
        ("inbox_claim", False, False),
    ],
)
def test_only_calls_harmless_to_run_twice_are_repeated(
    fn: str, read_only: bool, safe: bool
) -> None:
    assert safe_to_repeat(fn, read_only=read_only) is safe


@pytest.fixture
async def quick_store(database_url: str) -> AsyncIterator[Store]:
    """A store that tries a lost connection again for 1 s only (DATABASE_RECONNECT_SECONDS)."""
    store = await open_store(load_settings(database_url=database_url, database_reconnect_seconds=1))
    try:
        yield store
    finally:
        await store.aclose()


async def test_an_upsert_whose_connection_is_terminated_is_repeated_on_a_new_one(
    store: Store, database_url: str
) -> None:
    await store.call("register_enterprise", p_enterprise=ENTERPRISE)
    rows = [guest_row()["raw"] for _ in range(3)]
    with terminated_in(database_url, "upsert_guests", table="guests") as terminated:
        result = await store.call("upsert_guests", p_scope_id=CHAIN_ID, p_records=rows)
    assert terminated
    assert result["inserted"] + result["unchanged"] == 3
    with psycopg.connect(database_url) as conn:
        assert conn.execute("select count(*) from public.guests").fetchone() == (3,)


async def test_a_read_whose_connection_is_terminated_is_repeated(
    store: Store, database_url: str
) -> None:
    where = {"p_scope_id": CHAIN_ID, "p_entity": "customers", "p_phase": "poll"}
    await store.call("checkpoint_get", **where)  # known as read-only
    with terminated_in(
        database_url, "checkpoint_get", table="sync_checkpoints", mode="access exclusive"
    ) as terminated:
        checkpoint = await store.call("checkpoint_get", **where)
    assert terminated
    assert checkpoint["high_water_utc"] is None


async def test_a_call_not_safe_to_repeat_is_not_repeated_and_says_it_may_have_been_applied(
    store: Store, database_url: str
) -> None:
    with (
        terminated_in(database_url, "run_start", table="sync_runs") as terminated,
        pytest.raises(ConnectionLostError) as raised,
    ):
        await store.call("run_start", p_job="backfill")
    assert terminated
    assert str(raised.value) == (
        "run_start: connection to the database lost: terminating connection due to administrator"
        " command; it was under way and is not repeated: it may or may not have been applied"
        " [57P01]"
    )
    dbname = conninfo_to_dict(database_url)["dbname"]
    assert raised.value.where == f"the database at 127.0.0.1:5432/{dbname}"
    # the store goes on with a new connection
    assert (await store.call("run_start", p_job="backfill"))["id"]


async def test_an_idle_connection_the_server_ended_is_replaced_before_a_call_gets_it(
    database_url: str,
) -> None:
    """The pool checks a connection without a round trip while it is quiet; one the server
    ended meanwhile (its socket then readable) is checked in full and replaced, so that even a
    call not safe to repeat never meets it."""
    store = Store(await PsycopgTransport.connect(database_url, max_size=1))
    try:
        await store.call("run_start", p_job="backfill")
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity"
                " where datname = current_database() and application_name = 'guesthub'"
            )
            for _ in range(600):  # until the backend is gone (its socket then says so)
                if not admin.execute(
                    "select 1 from pg_stat_activity where datname = current_database()"
                    " and application_name = 'guesthub'"
                ).fetchone():
                    break
                await asyncio.sleep(0.05)
        assert (await store.call("run_start", p_job="backfill"))["id"]
    finally:
        await store.aclose()


async def test_a_database_that_stays_away_fails_the_call_saying_the_connection_was_lost(
    quick_store: Store, database_url: str
) -> None:
    await quick_store.call("register_enterprise", p_enterprise=ENTERPRISE)
    rows = [guest_row()["raw"]]
    dbname = conninfo_to_dict(database_url)["dbname"]
    with terminated_in(database_url, "upsert_guests", table="guests", refuse_new=True):
        with pytest.raises(ConnectionLostError) as raised:
            await quick_store.call("upsert_guests", p_scope_id=CHAIN_ID, p_records=rows)
        # a cleanup that then fails the same way (a lease released, as a unit of work does)
        with pytest.raises(ConnectionLostError) as cleanup:
            await released_after(quick_store, raised.value)
    lost = raised.value
    assert isinstance(lost, StoreError)  # what callers catching store errors see
    assert lost.where == f"the database at 127.0.0.1:5432/{dbname}"
    assert f'database "{dbname}" is not currently accepting connections' in lost.reason
    assert "not reopened within 1 s" in lost.reason
    failure = explain(lost)
    assert failure.code == ExitCode.DATABASE
    assert failure.message.startswith(
        f"lost the connection to the database at 127.0.0.1:5432/{dbname} during upsert_guests:"
    )
    assert "refused" not in failure.message
    # the cleanup's failure does not hide the call that lost the connection first
    assert cleanup.value.fn == "lease_release"
    assert explain(cleanup.value) == failure


async def released_after(store: Store, failure: BaseException) -> None:
    """A unit of work's end: ``failure`` under way, its lease released."""
    try:
        raise failure
    finally:
        await store.call("lease_release", p_name="unit", p_holder="run")


async def test_once_the_database_is_back_the_store_reopens_a_connection_by_itself(
    quick_store: Store, database_url: str
) -> None:
    await quick_store.call("register_enterprise", p_enterprise=ENTERPRISE)
    with (
        terminated_in(database_url, "upsert_guests", table="guests", refuse_new=True),
        pytest.raises(ConnectionLostError),
    ):
        await quick_store.call("upsert_guests", p_scope_id=CHAIN_ID, p_records=[guest_row()["raw"]])
    # the database accepts connections again: the store reopens one by itself
    assert (await asyncio.wait_for(quick_store.call("run_start", p_job="x"), 30))["id"]


ENTERPRISE = {
    "Id": "6f1a3b5e-0000-4000-8000-0000000e0001",
    "ChainId": CHAIN_ID,
    "Name": "Hotel",
    "CreatedUtc": "2020-01-01T00:00:00Z",
}
