"""The real-time worker: the real listener stores the simulator's WebSocket frames, the worker
drains them (LISTEN/NOTIFY, or the poll without it) with the scheduled job's code, a lost LISTEN
connection is reopened without losing what arrived meanwhile, and a staff edit is pushed to the
simulator without any job run."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import psycopg
import pytest

from shared.connections.registry import active_connections, connection_id_for
from shared.db.store import Store
from shared.listener.service import serve
from shared.listener.supervisor import Supervisor
from shared.listener.worker import LISTEN_APPLICATION, Worker, listen_url
from shared.quality.job import score_profiles
from shared.settings import Settings, load_settings
from shared.simulator.config import FIXTURE_ACCESS_TOKEN, FIXTURE_CLIENT_TOKEN
from shared.simulator.running import Simulator
from shared.sync.connect import connected_engine
from shared.sync.entities import entities
from shared.sync.liveness import Held, Liveness, live_run
from shared.sync.runs import recorded_run
from tests.listener.support import GOOD_TOKENS, listener_factory, wait_for
from tests.listener.test_service import free_port
from tests.listener.webhooks import webhook_receiver
from tests.support.tenancy import add_user

pytestmark = pytest.mark.anyio
TOKEN = GOOD_TOKENS[0]
NEVER = 3600.0  # a poll that never comes round within a test: only notifications wake


def settings_for(simulator: Simulator, database_url: str, websocket_url: str) -> Settings:
    return load_settings(
        mews_platform_url=simulator.url,
        mews_websocket_url=websocket_url,
        database_url=database_url,
        mews_access_token=TOKEN,
        mews_rate_limit=10_000,
    )


def reservation_states(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        return {
            str(i): s for i, s in conn.execute("select mews_id, state from public.reservations")
        }


def inbox_statuses(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [s for (s,) in conn.execute("select status from public.event_inbox order by id")]


def job_runs(url: str, job: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "select count(*) from public.sync_runs where job = %s", (job,)
        ).fetchone()
    return int(row[0]) if row else 0


@asynccontextmanager
async def running(
    settings: Settings, store: Store, **options: Any
) -> AsyncIterator[tuple[Supervisor, Worker]]:
    """The listener's sockets and the worker, on the connections table."""

    async def active() -> list[Any]:
        return await active_connections(store, settings)

    async def no_catch_up(_: Any) -> None:
        return None

    supervisor = Supervisor(
        active,
        listener_factory(store, settings.mews_websocket_url),
        no_catch_up,
        refresh_seconds=NEVER,
    )
    worker = Worker(settings, store, active, refresh_seconds=NEVER, **options)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(supervisor.run(stop)), asyncio.create_task(worker.run(stop))]
    try:
        yield supervisor, worker
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)


async def loaded(settings: Settings, store: Store, *names: str) -> None:
    async with connected_engine(settings, store, lag=timedelta(0)) as engine:
        for spec in entities(names):
            await engine.backfill(spec)


async def changes_arrive(simulator: Simulator, url: str, supervisor: Supervisor) -> None:
    """Mews changes reservations; the frames are stored, then drained into the mirror."""
    await wait_for(
        lambda: any(s.listener.state.status == "connected" for s in supervisor.sockets.values())
    )
    changed = await asyncio.to_thread(simulator.mutate, reservations_updated=3)
    ids = changed["reservations"]
    assert ids

    def mirrored() -> bool:
        states = reservation_states(url)
        return (
            all(states.get(i) == simulator.data.reservations[i]["State"] for i in ids)
            and inbox_statuses(url)
            and set(inbox_statuses(url)) == {"done"}
        )

    await wait_for(mirrored, what="the changed reservations in the mirror, the inbox done")


async def test_frames_reach_the_mirror_on_a_notification_without_any_job(
    simulator: Simulator, store: Store, database_url: str, websocket_url: str
) -> None:
    settings = settings_for(simulator, database_url, websocket_url)
    await loaded(settings, store, "reservations")
    async with running(
        settings, store, listen=listen_url(settings), poll_seconds=NEVER, backstop_seconds=NEVER
    ) as (supervisor, worker):
        await wait_for(lambda: worker.state.listening, what="LISTEN")
        await changes_arrive(simulator, database_url, supervisor)
        assert worker.state.notifications >= 1
    assert job_runs(database_url, "process_events") == 0
    assert job_runs(database_url, "realtime") >= 1


async def test_without_listen_the_inbox_is_polled(
    simulator: Simulator, store: Store, database_url: str, websocket_url: str
) -> None:
    settings = settings_for(simulator, database_url, websocket_url)
    await loaded(settings, store, "reservations")
    async with running(settings, store, listen=None, poll_seconds=0.5) as (supervisor, worker):
        await changes_arrive(simulator, database_url, supervisor)
        assert not worker.state.listening
        assert worker.state.notifications == 0


async def test_a_lost_listen_connection_is_reopened_and_nothing_is_lost(
    simulator: Simulator, store: Store, database_url: str, websocket_url: str
) -> None:
    settings = settings_for(simulator, database_url, websocket_url)
    await loaded(settings, store, "reservations")
    async with running(
        settings, store, listen=listen_url(settings), poll_seconds=NEVER, backstop_seconds=NEVER
    ) as (supervisor, worker):
        await wait_for(lambda: worker.state.listens == 1 and worker.state.listening)
        await wait_for(lambda: worker.state.drains >= 1, what="the first drain")
        with psycopg.connect(database_url, autocommit=True) as conn:
            killed = conn.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity"
                " where application_name = %s and datname = current_database()",
                (LISTEN_APPLICATION,),
            ).fetchall()
        assert killed == [(True,)]
        await changes_arrive(simulator, database_url, supervisor)
        await wait_for(lambda: worker.state.listens >= 2, what="LISTEN again")


async def test_a_staff_edit_reaches_mews_without_any_job(
    simulator: Simulator, store: Store, database_url: str, websocket_url: str
) -> None:
    settings = settings_for(simulator, database_url, websocket_url)
    await loaded(settings, store, "customers")
    enterprise_id = simulator.data.enterprises[0]["Id"]
    with psycopg.connect(database_url, autocommit=True) as conn:
        user = add_user(conn, enterprise_id=enterprise_id)
        row = conn.execute("select mews_id::text from public.guests limit 1").fetchone()
    assert row is not None
    guest = row[0]
    async with running(
        settings, store, listen=listen_url(settings), poll_seconds=NEVER, backstop_seconds=NEVER
    ) as (_, worker):
        await wait_for(lambda: worker.state.listening and worker.drainers, what="LISTEN")
        drainer = worker.drainers[connection_id_for(TOKEN)]
        await wait_for(lambda: bool(drainer.chains), what="the drain's chains")
        with psycopg.connect(database_url, autocommit=True) as conn, conn.transaction():
            conn.execute("set local role authenticated")
            conn.execute(
                "select set_config('request.jwt.claims', %s, true)",
                (json.dumps({"role": "authenticated", "sub": user}),),
            )
            conn.execute(
                "update public.guests set notes = 'pushed at once' where mews_id = %s", (guest,)
            )
        await wait_for(
            lambda: simulator.data.customers[guest].get("Notes") == "pushed at once",
            what="the edit in Mews",
        )
        await wait_for(lambda: worker.state.pushes >= 1)
    assert job_runs(database_url, "push_changes") == 0


def facts_current(url: str, ids: list[str]) -> bool:
    """Each guest's facts computed from its current row, and a score for it."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select count(*) from public.guests g"
            " join public.guest_facts f on f.chain_id = g.chain_id and f.guest_mews_id = g.mews_id"
            " join public.guest_scores s on s.chain_id = g.chain_id and s.guest_mews_id = g.mews_id"
            " where g.mews_id = any(%s::uuid[]) and f.source_synced_at = g.synced_at",
            (ids,),
        ).fetchone()
    return bool(rows and rows[0] == len(ids))


def mirrored_phones(url: str, ids: list[str]) -> dict[str, str | None]:
    with psycopg.connect(url) as conn:
        return {
            str(i): p
            for i, p in conn.execute(
                "select mews_id, phone from public.guests where mews_id = any(%s::uuid[])", (ids,)
            )
        }


async def test_webhooks_reach_the_guests_and_their_scores_without_any_job(
    simulator: Simulator, store: Store, database_url: str, websocket_url: str
) -> None:
    settings = settings_for(simulator, database_url, websocket_url)
    await loaded(settings, store, "customers")
    async with recorded_run(store, "score_profiles") as run:  # the first scoring: rule sets
        await score_profiles(store, run)
    with webhook_receiver(settings, "s3cret") as url:
        simulator.set_webhook(url)
        async with running(
            settings, store, listen=listen_url(settings), poll_seconds=NEVER, backstop_seconds=NEVER
        ) as (_, worker):
            await wait_for(lambda: worker.state.listening, what="LISTEN")
            changed = await asyncio.to_thread(simulator.mutate, customers_updated=3)
            ids = changed["customers_updated"]
            assert ids

            def arrived() -> bool:
                phones = mirrored_phones(database_url, ids)
                return all(phones[i] == simulator.data.customers[i].get("Phone") for i in ids)

            await wait_for(arrived, what="the changed customers in the mirror")
            await wait_for(lambda: facts_current(database_url, ids), what="their facts and scores")
    assert job_runs(database_url, "process_events") == 0
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "select sum((counts->>'facts_refreshed')::int) from public.sync_runs"
            " where job = 'realtime'"
        ).fetchone()
    assert row is not None
    assert row[0] >= len(ids)  # by the worker: the score job ran before the change


async def test_the_service_runs_the_worker_and_shows_it_on_its_health_endpoint(
    simulator: Simulator, store: Store, database_url: str, websocket_url: str
) -> None:
    settings = settings_for(simulator, database_url, websocket_url)
    await loaded(settings, store, "reservations")
    port = free_port()
    stop = asyncio.Event()
    service = asyncio.create_task(
        serve(settings, port=port, stop=stop, refresh_seconds=NEVER, realtime=True)
    )
    health: dict[str, Any] = {}

    async def listening() -> bool:
        async with httpx.AsyncClient() as client:
            try:
                health.update((await client.get(f"http://127.0.0.1:{port}/healthz")).json())
            except httpx.TransportError:
                return False
        return bool(health["status"] == "ok" and health["realtime"]["listening"])

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while not await listening():
        assert loop.time() < deadline, "the service's worker did not listen"
        await asyncio.sleep(0.1)
    changed = await asyncio.to_thread(simulator.mutate, reservations_updated=2)

    def mirrored() -> bool:
        states = reservation_states(database_url)
        return all(
            states.get(i) == simulator.data.reservations[i]["State"]
            for i in changed["reservations"]
        )

    await wait_for(mirrored, what="the reservations, drained by the service's worker")
    stop.set()
    await asyncio.wait_for(service, 60)
    assert job_runs(database_url, "process_events") == 0


def inbox_processing(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "select count(*) from public.event_inbox where status = 'processing'"
        ).fetchone()
    return int(row[0]) if row else 0


async def test_a_stop_finishes_the_events_in_hand(
    simulator: Simulator, store: Store, database_url: str, websocket_url: str
) -> None:
    """Stopped while Mews is slow to answer the read of claimed events: the worker completes
    them before it returns, leaving nothing claimed for others to wait on."""
    settings = settings_for(simulator, database_url, websocket_url)
    await loaded(settings, store, "reservations")
    async with running(
        settings, store, listen=listen_url(settings), poll_seconds=NEVER, backstop_seconds=NEVER
    ) as (supervisor, worker):
        await wait_for(lambda: worker.state.listening and worker.state.drains >= 1)
        await wait_for(
            lambda: any(s.listener.state.status == "connected" for s in supervisor.sockets.values())
        )
        await asyncio.to_thread(simulator.set_faults, extra_delay_ms=1500)
        changed = await asyncio.to_thread(simulator.mutate, reservations_updated=2)
        await wait_for(lambda: inbox_processing(database_url) > 0, what="events in hand")
    # `running` has stopped the worker and waited for it
    assert inbox_processing(database_url) == 0
    assert set(inbox_statuses(database_url)) == {"done"}
    states = reservation_states(database_url)
    for reservation_id in changed["reservations"]:
        assert states[reservation_id] == simulator.data.reservations[reservation_id]["State"]


def running_realtime_runs(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [
            str(i)
            for (i,) in conn.execute(
                "select id from public.sync_runs where job = 'realtime' and status = 'running'"
            )
        ]


async def test_a_run_marked_abandoned_is_replaced_and_what_arrives_is_still_drained(
    simulator: Simulator, store: Store, database_url: str, websocket_url: str
) -> None:
    """In the chaos run, a Postgres restart cut the worker's session lock and another job marked
    its run abandoned before the heartbeat took the lock again; the worker drained on under the
    abandoned run for minutes, its claims free for any other job to take and its push's lease
    free for the scheduled push. Told so by its heartbeat, it starts a new run."""
    settings = settings_for(simulator, database_url, websocket_url)
    await loaded(settings, store, "reservations")
    async with running(
        settings,
        store,
        listen=listen_url(settings),
        poll_seconds=NEVER,
        backstop_seconds=NEVER,
        liveness=Liveness(heartbeat_seconds=0.2),
    ) as (supervisor, worker):
        await wait_for(lambda: worker.state.listening and worker.state.drains >= 1)
        (first,) = running_realtime_runs(database_url)
        with psycopg.connect(database_url, autocommit=True) as conn:  # what runs_reap does
            conn.execute(
                "update public.sync_runs set status = 'abandoned', finished_at = now(),"
                " abandoned_by = 'a job that saw its session lock gone' where id = %s",
                (first,),
            )
        await wait_for(
            lambda: running_realtime_runs(database_url) not in ([], [first]),
            what="a new real-time run",
        )
        await changes_arrive(simulator, database_url, supervisor)
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "select status, (counts->>'inbox_claimed')::int from public.sync_runs"
            " where job = 'realtime' and id <> %s",
            (first,),
        ).fetchone()
    assert row is not None
    assert row[0] == "succeeded"
    assert row[1] >= 1  # the events were claimed by the new run


async def test_an_edit_made_while_no_worker_ran_is_pushed_when_it_starts(
    simulator: Simulator, store: Store, database_url: str, websocket_url: str
) -> None:
    """The chaos run killed the worker in the middle of a push; the edits it held were left to
    the scheduled push (minutes) unless another edit of the chain came: a new run pushes what is
    pending at once, no notification needed."""
    settings = settings_for(simulator, database_url, websocket_url)
    await loaded(settings, store, "customers")
    enterprise_id = simulator.data.enterprises[0]["Id"]
    with psycopg.connect(database_url, autocommit=True) as conn:
        user = add_user(conn, enterprise_id=enterprise_id)
        row = conn.execute("select mews_id::text from public.guests limit 1").fetchone()
        assert row is not None
        guest = row[0]
        with conn.transaction():
            conn.execute("set local role authenticated")
            conn.execute(
                "select set_config('request.jwt.claims', %s, true)",
                (json.dumps({"role": "authenticated", "sub": user}),),
            )
            conn.execute(
                "update public.guests set notes = 'edited while down' where mews_id = %s",
                (guest,),
            )
    async with running(settings, store, listen=None, poll_seconds=NEVER) as (_, worker):
        await wait_for(
            lambda: simulator.data.customers[guest].get("Notes") == "edited while down",
            what="the edit in Mews",
        )
        assert worker.state.notifications == 0
    assert job_runs(database_url, "push_changes") == 0


async def test_an_edit_the_scheduled_push_held_the_chain_for_is_pushed_after_it(
    simulator: Simulator, store: Store, database_url: str, websocket_url: str
) -> None:
    """The worker's push turn found the chain's lease held by the scheduled push (which had
    read its edits before this one was made): it tries again after the longest delay instead of
    leaving the edit to the next scheduled push."""
    settings = settings_for(simulator, database_url, websocket_url)
    await loaded(settings, store, "customers")
    enterprise_id = simulator.data.enterprises[0]["Id"]
    with psycopg.connect(database_url, autocommit=True) as conn:
        user = add_user(conn, enterprise_id=enterprise_id)
        row = conn.execute("select mews_id::text, chain_id::text from public.guests").fetchone()
    assert row is not None
    guest, chain = row
    skipped: list[Held] = []
    async with (
        running(
            settings,
            store,
            listen=listen_url(settings),
            poll_seconds=NEVER,
            backstop_seconds=NEVER,
            push_debounce=0.1,
            push_max_delay=0.5,
            liveness=Liveness(heartbeat_seconds=0.2, on_held=skipped.append),
        ) as (_, worker),
        live_run(store, "push_changes") as scheduled,
    ):
        await wait_for(lambda: worker.state.listening and worker.drainers, what="LISTEN")
        drainer = worker.drainers[connection_id_for(TOKEN)]
        await wait_for(lambda: drainer.chains == {chain}, what="the drain's chain")
        # the turns of the run's start and of LISTEN are over (none due, the lease free):
        # from here on only the edit below makes one
        await wait_for(lambda: not drainer.edits, what="no push turn due")
        name = f"push_changes:{chain}"
        taken = {"acquired": False}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not taken["acquired"]:
            assert loop.time() < deadline, "the lease was never free"
            await asyncio.sleep(0.05)
            taken = await store.call(
                "lease_acquire", p_name=name, p_holder=str(scheduled.id), p_seconds=120
            )
        staff_edit(database_url, user, guest, "notes", "after the lease")
        await wait_for(lambda: any(h.event == "skipped" for h in skipped), what="push skipped")
        await store.call("lease_release", p_name=name, p_holder=str(scheduled.id))
        await wait_for(
            lambda: simulator.data.customers[guest].get("Notes") == "after the lease",
            what="the edit in Mews",
        )


def staff_edit(url: str, user: str, guest: str, column: str, value: str) -> Any:
    """A staff edit through row-level security; the base the database recorded for it."""
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute("set local role authenticated")
        conn.execute(
            "select set_config('request.jwt.claims', %s, true)",
            (json.dumps({"role": "authenticated", "sub": user}),),
        )
        row = conn.execute(
            f"update public.guests set {column} = %s where mews_id = %s"
            f" returning local_base -> '{column}'",
            (value, guest),
        ).fetchone()
    assert row is not None
    return row[0]


def mews_update(simulator: Simulator, guest: str, **fields: Any) -> dict[str, Any]:
    """Another Mews user changes the customer (another integration's token)."""
    body = {
        "ClientToken": FIXTURE_CLIENT_TOKEN,
        "AccessToken": FIXTURE_ACCESS_TOKEN,
        "Client": "a test",
        "CustomerId": guest,
        **fields,
    }
    answer = httpx.post(f"{simulator.url}/api/connector/v1/customers/update", json=body)
    answer.raise_for_status()
    customer: dict[str, Any] = answer.json()
    return customer


def db_clock_past(url: str, stamp: str) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "select clock_timestamp() >= %s::timestamptz + interval '1 second'", (stamp,)
        ).fetchone()
    return bool(row and row[0])


def guest_row(url: str, guest: str) -> tuple[Any, ...]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "select occupation, push_status from public.guests where mews_id = %s", (guest,)
        ).fetchone()
    assert row is not None
    return tuple(row)


def conflicts_of(url: str, guest: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return [
            tuple(r)
            for r in conn.execute(
                "select field, local_value, mews_value, resolution from public.conflict_log"
                " where guest_mews_id = %s",
                (guest,),
            )
        ]


async def test_a_mews_change_the_worker_mirrored_is_the_base_of_the_staff_edit_made_over_it(
    simulator: Simulator, store: Store, database_url: str, websocket_url: str
) -> None:
    """What the chaos run took for a lost Mews change: Mews changed a guest's occupation, the
    worker mirrored it within the second, and the staff edit a second later was made over it:
    its base is the Mews value, so it is pushed with no conflict. The same edit over a Mews
    change not yet mirrored (its webhook never came) is a conflict the later staff edit wins,
    logged with the Mews value."""
    settings = settings_for(simulator, database_url, websocket_url)
    await loaded(settings, store, "customers")
    enterprise_id = simulator.data.enterprises[0]["Id"]
    with psycopg.connect(database_url, autocommit=True) as conn:
        user = add_user(conn, enterprise_id=enterprise_id)
        rows = conn.execute(
            "select mews_id::text from public.guests where is_active order by mews_id limit 2"
        ).fetchall()
    seen, unseen = (r[0] for r in rows)
    with webhook_receiver(settings, "s3cret") as url:
        simulator.set_webhook(url)
        async with running(
            settings, store, listen=listen_url(settings), poll_seconds=NEVER, backstop_seconds=NEVER
        ) as (_, worker):
            await wait_for(lambda: worker.state.listening, what="LISTEN")
            await asyncio.to_thread(mews_update, simulator, seen, Occupation="mews-seen")
            await wait_for(lambda: guest_row(database_url, seen)[0] == "mews-seen", what="mirrored")
            assert staff_edit(database_url, user, seen, "occupation", "staff-seen") == "mews-seen"

            simulator.set_webhook(None)  # Mews' change is not announced
            changed = await asyncio.to_thread(
                mews_update, simulator, unseen, Occupation="mews-unseen"
            )
            simulator.set_webhook(url)
            # the staff edit a whole second later (Mews stamps whole seconds): the later write
            await wait_for(
                lambda: db_clock_past(database_url, changed["UpdatedUtc"]),
                what="the database clock a second past Mews' stamp",
            )
            assert staff_edit(database_url, user, unseen, "occupation", "staff-unseen") != (
                "mews-unseen"
            )

            def pushed(guest: str, value: str) -> bool:
                return simulator.data.customers[guest].get("Occupation") == value and (
                    guest_row(database_url, guest)[1] == "pushed"
                )

            await wait_for(lambda: pushed(seen, "staff-seen"), what="the edit over it pushed")
            await wait_for(lambda: pushed(unseen, "staff-unseen"), what="the other pushed")
    assert conflicts_of(database_url, seen) == []
    assert conflicts_of(database_url, unseen) == [
        ("occupation", "staff-unseen", "mews-unseen", "local_won")
    ]
