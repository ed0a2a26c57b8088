"""The score job leaves the planner statistics of what it read and wrote current, and a
scheduled run does work in proportion to what changed: nothing changed, no row is touched."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from typing import Any

import psycopg
import pytest

import shared.quality.facts as facts_module
import shared.quality.job as job_module
from shared.db.store import PsycopgTransport, Store
from shared.quality.job import score_profiles
from shared.quality.live import rescore_changed
from shared.sync.runs import Run
from tests.quality.conftest import insert_many
from tests.support.rows import CHAIN_ID, ENTERPRISE_ID
from tests.support.tenancy import seed_tenancy

pytestmark = pytest.mark.anyio
GUESTS = 800
WATCHED = (
    "guests",
    "guest_facts",
    "guest_enrichments",
    "guest_scores",
    "guest_duplicates",
    "quality_daily",
)


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        seed_tenancy(connection)
        insert_many(connection, GUESTS)  # a load that analyzed nothing
        yield connection


@pytest.fixture
async def store(database_url: str, conn: psycopg.Connection) -> AsyncIterator[Store]:
    store = Store(await PsycopgTransport.connect(database_url, max_size=4))
    yield store
    await store.aclose()


async def job(store: Store) -> dict[str, int]:
    run = Run(uuid.uuid4(), "score_profiles")
    await score_profiles(store, run)
    return dict(run.counts)


async def statistics_sent(conn: psycopg.Connection, store: Store) -> None:
    """Every connection that wrote sends its pending table statistics now. A server sends them
    at most once a second, else once idle for ten: what a job wrote could otherwise reach
    n_mod_since_analyze only after the next job looked at it."""
    conn.execute("select pg_stat_force_next_flush()")  # sent before the call returns
    transport = store.transport
    assert isinstance(transport, PsycopgTransport)
    async with AsyncExitStack() as stack:
        pool = transport.pool
        held = [await stack.enter_async_context(pool.connection()) for _ in range(pool.max_size)]
        for connection in held:  # all of them, one each
            await connection.execute("select pg_stat_force_next_flush()")


def versions(conn: psycopg.Connection) -> dict[str, set[tuple[str, str]]]:
    """Every row of the tables scoring touches, by its version (xmin) and place (ctid)."""
    return {
        table: {
            (str(xmin), str(ctid))
            for xmin, ctid in conn.execute(f"select xmin::text, ctid::text from public.{table}")
        }
        for table in WATCHED
    }


def estimated(conn: psycopg.Connection, table: str) -> tuple[float, int, bool]:
    """The planner's row estimate, the rows there are, and whether it was ever analyzed."""
    row = conn.execute(
        "select c.reltuples, (select count(*) from public." + table + "),"
        " s.last_analyze is not null or s.last_autoanalyze is not null"
        " from pg_class c join pg_stat_user_tables s on s.relid = c.oid where c.oid = %s::regclass",
        (f"public.{table}",),
    ).fetchone()
    assert row is not None
    return float(row[0]), int(row[1]), bool(row[2])


async def test_the_first_score_after_a_load_leaves_statistics_current(
    conn: psycopg.Connection, store: Store
) -> None:
    assert estimated(conn, "guests")[2] is False
    counts = await job(store)
    assert counts["scored"] == GUESTS
    for table in ("guests", "guest_facts", "guest_scores"):
        planner, actual, analyzed = estimated(conn, table)
        assert analyzed, table
        assert planner == actual, table


async def test_a_scheduled_score_with_nothing_changed_touches_no_row(
    conn: psycopg.Connection, store: Store
) -> None:
    await job(store)
    await statistics_sent(conn, store)
    await job(store)
    await statistics_sent(conn, store)
    before = versions(conn)
    counts = await job(store)
    assert versions(conn) == before
    assert {k: v for k, v in counts.items() if v} == {}


async def test_a_changed_guest_alone_is_refreshed_and_rescored(
    conn: psycopg.Connection, store: Store
) -> None:
    await job(store)
    before = versions(conn)["guest_scores"]
    (guest,) = conn.execute(
        "update public.guests set email = null, synced_at = now()"
        " where mews_id = (select mews_id from public.guests where email is not null order by mews_id limit 1)"
        " returning mews_id::text"
    ).fetchone()  # type: ignore[misc]
    counts = await job(store)
    assert (counts["facts_refreshed"], counts["scored"], counts["scores_changed"]) == (1, 1, 1)
    after = versions(conn)["guest_scores"]
    (now,) = conn.execute(
        "select (xmin::text, ctid::text) from public.guest_scores where guest_mews_id = %s",
        (guest,),
    ).fetchone()  # type: ignore[misc]
    assert after - before == {tuple(now)}


async def test_a_staff_edit_waiting_to_be_pushed_is_refreshed_and_rescored(
    conn: psycopg.Connection, store: Store
) -> None:
    await job(store)
    # what the local-edit trigger leaves behind (synced_at does not move)
    (guest,) = conn.execute(
        "update public.guests set phone = null, push_status = 'pending', local_edited_at = clock_timestamp(),"
        " local_changes = '{\"phone\": null}'"
        " where mews_id = (select mews_id from public.guests where phone is not null order by mews_id limit 1)"
        " returning mews_id::text"
    ).fetchone()  # type: ignore[misc]
    counts = await job(store)
    assert (counts["facts_refreshed"], counts["scores_changed"]) == (1, 1)
    assert conn.execute(
        "select phone_e164 is null from public.guest_facts where guest_mews_id = %s", (guest,)
    ).fetchone() == (True,)
    assert (await job(store)).get("facts_refreshed", 0) == 0


async def test_each_enterprise_is_scored_once_its_chain_has_guests(
    conn: psycopg.Connection, store: Store
) -> None:
    counts = await job(store)
    assert counts["scored"] == GUESTS
    assert conn.execute(
        "select count(*) from public.guest_scores where enterprise_id = %s", (ENTERPRISE_ID,)
    ).fetchone() == (GUESTS,)
    assert conn.execute(
        "select count(*) from public.guest_scores where chain_id <> %s", (CHAIN_ID,)
    ).fetchone() == (0,)


def last_analyzed(conn: psycopg.Connection, table: str) -> Any:
    row = conn.execute(
        "select last_analyze from pg_stat_user_tables where relid = %s::regclass",
        (f"public.{table}",),
    ).fetchone()
    assert row is not None
    assert row[0] is not None, table
    return row[0]


async def test_facts_of_a_first_load_are_analyzed_before_the_duplicates_read_them(
    conn: psycopg.Connection, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn.execute("delete from public.guest_facts")  # a first load: no facts yet
    # a hundred people entered twice (one name and birth date): suggestions to write
    conn.execute(
        """with g as (select mews_id, first_name, last_name, birth_date,
                             row_number() over (order by mews_id) as r
                      from public.guests where birth_date is not null and first_name is not null)
           update public.guests t
              set first_name = s.first_name, last_name = s.last_name, birth_date = s.birth_date
             from g s, g d
            where d.mews_id = t.mews_id and d.r = s.r + 1 and s.r % 2 = 1 and s.r < 200"""
    )
    # the order of what the refresh does, as it happens (the real calls, recorded): the
    # statistics' own timestamps cannot say it, since counts of writes reach the statistics
    # collector late and may make guest_facts look stale again at the end of the job
    steps: list[str] = []
    real_analyze, real_rebuild = facts_module.analyze_tables, facts_module.duplicates.rebuild

    async def analyze(store: Store, tables: Any) -> list[str]:
        done = await real_analyze(store, tables)
        steps.extend(f"analyzed {name}" for name in done)
        return done

    async def rebuild(store: Store, chain_id: str) -> Any:
        steps.append("duplicates read the facts")
        return await real_rebuild(store, chain_id)

    real_unit = job_module.score_unit

    async def score_unit(*args: Any, **kwargs: Any) -> Any:
        steps.append("the pass reads the facts")
        return await real_unit(*args, **kwargs)

    monkeypatch.setattr(facts_module, "analyze_tables", analyze)
    monkeypatch.setattr(facts_module.duplicates, "rebuild", rebuild)
    monkeypatch.setattr(job_module, "score_unit", score_unit)
    counts = await job(store)
    assert (counts["facts_refreshed"], counts["scored"]) == (GUESTS, GUESTS)
    assert counts["duplicate_pairs"] >= 100
    for table in ("guest_facts", "guest_enrichments", "guest_duplicates", "guest_scores"):
        planner, actual, analyzed = estimated(conn, table)
        assert analyzed, table
        assert planner == actual, table
    # the facts as soon as they were written: the rebuild of duplicates and the pass read them
    assert steps.index("analyzed public.guest_facts") < steps.index("duplicates read the facts")
    assert steps.index("duplicates read the facts") < steps.index(
        "analyzed public.guest_duplicates"
    )
    assert steps.index("analyzed public.guest_facts") < steps.index("the pass reads the facts")


async def test_the_guests_a_worker_wrote_are_rescored_by_their_ids(
    conn: psycopg.Connection, store: Store
) -> None:
    """The real-time worker names the guests it wrote: only those among them whose facts are
    older than their row are refreshed (by id, no scan of the chain's recent guests)."""
    await job(store)
    changed, fresh = (
        str(i)
        for (i,) in conn.execute(
            "select mews_id from public.guests where email is not null order by mews_id limit 2"
        ).fetchall()
    )
    conn.execute(
        "update public.guests set email = null, synced_at = now() where mews_id = %s", (changed,)
    )
    elsewhere = conn.execute(
        "update public.guests set synced_at = now() where mews_id = (select mews_id"
        " from public.guests where mews_id not in (%s, %s) order by mews_id limit 1)"
        " returning mews_id::text",
        (changed, fresh),
    ).fetchone()
    assert elsewhere is not None
    refresh = await rescore_changed(store, CHAIN_ID, ids=[changed, fresh])
    assert (refresh.facts, refresh.scored) == (1, 1)
    current = dict(
        conn.execute(
            "select g.mews_id::text, f.source_synced_at = g.synced_at from public.guests g"
            " join public.guest_facts f on f.chain_id = g.chain_id and f.guest_mews_id = g.mews_id"
            " where g.mews_id = any(%s::uuid[])",
            ([changed, fresh, elsewhere[0]],),
        ).fetchall()
    )
    assert current == {changed: True, fresh: True, elsewhere[0]: False}
