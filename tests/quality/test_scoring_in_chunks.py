"""A full rescore is a pass of calls that each fit the REST API's statement timeout, and it
scores every guest exactly as one call does; dry runs page; enabling leaves the pass to its
callers; the calendar's changes are rescored on their day."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import date, timedelta
from typing import Any

import psycopg
import pytest

from shared.db.store import PsycopgTransport, Store, SupabaseTransport
from shared.netserve import serve_in_thread
from shared.quality.passes import dry_run, enable_rule_set, full_pass, rescore_due
from shared.quality.rules import DEFAULT_RULES
from shared.quality.scoring import score
from tests.quality.conftest import enable_rules, insert_many, insert_profile, scores
from tests.support import postgrest_double
from tests.support.rows import ENTERPRISE_ID
from tests.support.tenancy import add_user, as_role, seed_tenancy

pytestmark = pytest.mark.anyio
GUESTS = 1500


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        seed_tenancy(connection)
        enable_rules(connection, ENTERPRISE_ID, [r.model_dump() for r in DEFAULT_RULES])
        insert_many(connection, GUESTS)
        yield connection


@pytest.fixture
async def store(database_url: str, conn: psycopg.Connection) -> AsyncIterator[Store]:
    store = Store(await PsycopgTransport.connect(database_url, max_size=4))
    yield store
    await store.aclose()


def rescored_in_one_call(conn: psycopg.Connection) -> dict[str, tuple[int, list[int]]]:
    conn.execute("delete from public.guest_scores")
    conn.execute("select public.quality_rescore(%s)", (ENTERPRISE_ID,))
    return scores(conn, ENTERPRISE_ID)


def draft_with(conn: psycopg.Connection, **weights: int) -> str:
    (draft,) = conn.execute(
        "select public.quality_draft_rule_set(%s)->>'id'", (ENTERPRISE_ID,)
    ).fetchone()  # type: ignore[misc]
    for field, weight in weights.items():
        conn.execute(
            "update public.quality_rules set weight = %s"
            " where rule_set_id = %s and field = %s and kind = 'required'",
            (weight, draft, field),
        )
    return str(draft)


async def test_a_pass_of_many_small_calls_scores_every_guest_as_one_call_does(
    conn: psycopg.Connection, store: Store
) -> None:
    rescored = await full_pass(store, ENTERPRISE_ID, workers=3, guests_per_call=97)
    assert rescored.done
    assert rescored.scored == rescored.changed == GUESTS
    assert rescored.calls > GUESTS // 97  # one lane per call, and the call that finishes
    in_chunks = scores(conn, ENTERPRISE_ID)
    assert len(in_chunks) == GUESTS
    assert in_chunks == rescored_in_one_call(conn)


async def test_a_pass_resumes_where_it_stood_and_a_finished_one_is_one_call(
    conn: psycopg.Connection, store: Store
) -> None:
    first = 0
    for _ in range(3):  # an interrupted pass: started, then two lanes of 15 done
        step = await store.call("quality_rescore_pass", p_enterprise_id=ENTERPRISE_ID, p_limit=100)
        assert not step["done"]
        first += step["scored"]
    rest = await full_pass(store, ENTERPRISE_ID, workers=2, guests_per_call=5000)
    assert rest.done
    assert (first + rest.scored, step["scored_so_far"]) == (GUESTS, first)
    assert len(scores(conn, ENTERPRISE_ID)) == GUESTS
    again = await full_pass(store, ENTERPRISE_ID)
    assert (again.calls, again.scored, again.done) == (1, 0, True)


async def test_the_state_shows_the_progress_of_a_pass_to_staff(
    conn: psycopg.Connection, store: Store
) -> None:
    for lanes_done in (0, 1):  # the call that starts the pass scores no lane: it holds the state
        step = await store.call("quality_rescore_pass", p_enterprise_id=ENTERPRISE_ID, p_limit=500)
        assert (step["done"], step["guests"], step["lanes"], step["lanes_done"]) == (
            False,
            GUESTS,
            3,
            lanes_done,
        )
    assert step["scored"] == step["scored_so_far"] > 0
    staff = add_user(conn, enterprise_id=ENTERPRISE_ID)
    with as_role(conn, "authenticated", staff):
        lanes = conn.execute(
            "select count(*) filter (where done), count(*) from public.quality_score_lanes"
        ).fetchone()
    assert lanes == (1, 3)


@pytest.fixture
def supabase(database_url: str, conn: psycopg.Connection) -> Iterator[str]:
    with serve_in_thread(postgrest_double.create_app(database_url)) as server:
        yield server.http_url


async def api_store(url: str, conn: psycopg.Connection, role: str) -> Store:
    """The Supabase API as the service, or as an admin of the enterprise (their JWT)."""
    if role == "service_role":
        return Store(await SupabaseTransport.connect(url, postgrest_double.make_jwt(role)))
    from shared.cli.rules import user_store

    admin = add_user(conn, enterprise_id=ENTERPRISE_ID, role="admin")
    return await user_store(
        url, postgrest_double.make_jwt("anon"), postgrest_double.make_jwt(role, sub=admin)
    )


@pytest.mark.parametrize("role", ["service_role", "authenticated"])
async def test_over_the_rest_api_each_call_runs_under_its_timeout_and_scores_alike(
    conn: psycopg.Connection, supabase: str, role: str
) -> None:
    """Through the PostgREST double (8 s for authenticated, 8 s of authenticator for
    service_role): a dry run, enabling a rule set and its pass, each call within the limit."""
    conn.execute("select public.quality_rescore(%s)", (ENTERPRISE_ID,))
    draft = draft_with(conn, phone=40)
    api = await api_store(supabase, conn, role)
    try:
        figures = await dry_run(api, draft, guests_per_call=400)
        enabled = await enable_rule_set(api, draft, workers=2, guests_per_call=400)
    finally:
        await api.aclose()
    assert figures["guests"] == enabled["scored"] == GUESTS
    assert enabled["done"]
    assert enabled["snapshot"]["guests"] == GUESTS
    # every score row moves to the new set; the dry run counted the scores that move
    assert 0 < figures["changed"] <= enabled["changed"] == GUESTS
    assert scores(conn, ENTERPRISE_ID) == rescored_in_one_call(conn)


async def test_a_dry_run_in_pages_adds_up_to_the_one_call_figures(
    conn: psycopg.Connection, store: Store
) -> None:
    conn.execute("select public.quality_rescore(%s)", (ENTERPRISE_ID,))
    draft = draft_with(conn, phone=40, email=5)
    (whole,) = conn.execute("select public.quality_dry_run(%s)", (draft,)).fetchone()  # type: ignore[misc]
    paged = await dry_run(store, draft, guests_per_call=150)
    assert paged == {k: v for k, v in whole.items() if k not in ("next", "totals")}
    assert whole["next"] is None
    assert 0 < paged["changed"] <= GUESTS


async def test_enabling_without_rescoring_leaves_a_pass_due_that_callers_finish(
    conn: psycopg.Connection, store: Store
) -> None:
    await full_pass(store, ENTERPRISE_ID)
    draft = draft_with(conn, phone=40)
    enabled = await store.call("quality_enable_rule_set", p_rule_set_id=draft, p_rescore_limit=0)
    assert (enabled["scored"], enabled["done"], enabled["snapshot"]) == (0, False, None)
    state = conn.execute(
        "select scored_version < version from public.quality_score_state where enterprise_id = %s",
        (ENTERPRISE_ID,),
    ).fetchone()
    assert state == (True,)
    rescored = await full_pass(store, ENTERPRISE_ID, guests_per_call=600)
    assert (rescored.scored, rescored.done) == (GUESTS, True)
    assert rescored.snapshot is not None
    assert {
        r for (r,) in conn.execute("select distinct rule_set_id::text from public.guest_scores")
    } == {draft}


def years_ago(today: date, years: int) -> date:
    try:
        return today.replace(year=today.year - years)
    except ValueError:  # 29 February
        return today.replace(year=today.year - years, day=28)


def profile_born(birth: date) -> dict[str, Any]:
    return {"last_name": "Novák", "first_name": "Jan", "birth_date": birth}


def test_a_score_says_a_day_no_later_than_the_calendar_changes_it(conn: psycopg.Connection) -> None:
    today: date = conn.execute("select current_date").fetchone()[0]  # type: ignore[index]
    rules = DEFAULT_RULES
    births = [years_ago(today, 14) + timedelta(days=d) for d in (-1, 0, 1, 2, 40)] + [
        years_ago(today, 110) + timedelta(days=d) for d in (-2, -1, 0, 1, 30)
    ]
    ids = {insert_profile(conn, profile_born(b)): b for b in births}
    conn.execute("select public.quality_rescore(%s)", (ENTERPRISE_ID,))
    flips: dict[str, date | None] = dict(
        conn.execute(
            "select guest_mews_id::text, flips_on from public.guest_scores where guest_mews_id = any (%s)",
            (list(ids),),
        ).fetchall()
    )
    for guest, birth in ids.items():
        now = score(profile_born(birth), rules, today).value
        flip = flips[guest] or today + timedelta(days=3660)  # None: the calendar never changes it
        assert flip > today
        # never late: no change before that day (it may come a day early: 29 February)
        for day in (today + timedelta(days=1), flip - timedelta(days=1)):
            if day < flip:
                assert score(profile_born(birth), rules, day).value == now
    # the guests whose birthday crosses a bound tomorrow are due tomorrow
    crossing = {g for g, b in ids.items() if b in (years_ago(today, 14) + timedelta(days=1),)}
    assert {flips[g] for g in crossing} == {today + timedelta(days=1)}


async def test_guests_due_today_are_rescored_and_given_their_next_day(
    conn: psycopg.Connection, store: Store
) -> None:
    await full_pass(store, ENTERPRISE_ID)
    nothing = await rescore_due(store, ENTERPRISE_ID)
    assert (nothing.scored, nothing.changed) == (0, 0)
    conn.execute(
        "update public.guest_scores set flips_on = current_date - 1"
        " where guest_mews_id in (select guest_mews_id from public.guest_scores where flips_on is not null limit 5)"
    )
    due = await rescore_due(store, ENTERPRISE_ID, batch=2)
    assert due.scored == 5
    assert conn.execute(
        "select count(*) from public.guest_scores where flips_on <= current_date"
    ).fetchone() == (0,)
