"""The jobs over many connections, against the simulator serving several properties (each its
own AccessToken, data and request limit, and a portfolio token) over real HTTP, and the real
database: every property is served on its own budget, concurrent invocations never serve one
connection twice at once, a refused token costs only itself, and a pass cut short by its time
budget is carried on by the next invocation."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from cryptography.fernet import Fernet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from shared.connections import jobs
from shared.connections.fleet import FleetOptions, FleetResult, run_fleet
from shared.connections.registry import register_manual
from shared.db.connect import open_store
from shared.db.store import Store
from shared.intake.store import accept_webhook
from shared.netserve import serve_in_thread
from shared.settings import Settings, load_settings
from shared.simulator.running import Simulator, running_simulator
from shared.simulator.server import SimulatorConfig
from shared.sync.entities import SPECS

pytestmark = pytest.mark.anyio
LIMIT = 40  # per token and WINDOW: small, so that sharing one budget would show
WINDOW = 3.0  # seconds (Mews: 200 per 30 s; shorter here so that waiting for a slot is short)
HISTORY_DAYS = 62  # a first load of three 31-day windows an entity, not 24


def settings_for(database_url: str, simulator: Simulator) -> Settings:
    return load_settings(
        database_url=database_url,
        mews_platform_url=simulator.url,
        mews_access_token="",  # no environment connection: the registered ones only
        token_encryption_key=Fernet.generate_key().decode(),
        mews_rate_limit=LIMIT,
        mews_rate_window_seconds=WINDOW,
    )


@pytest.fixture(scope="module")
def simulator() -> Iterator[Simulator]:
    config = SimulatorConfig(
        properties=6,
        portfolio_enterprises=2,
        customers=40,
        history_days=HISTORY_DAYS,
        rate_limit=LIMIT,
        rate_window_seconds=WINDOW,
        seed=11,
    )
    with running_simulator(config) as sim:
        yield sim


@pytest.fixture
async def connected(
    database_url: str, simulator: Simulator
) -> AsyncIterator[tuple[Store, Settings]]:
    settings = settings_for(database_url, simulator)
    store = await open_store(settings)
    for prop in simulator.properties:
        await register_manual(store, settings, prop.access_token, prop.name)
    try:
        yield store, settings
    finally:
        await store.aclose()


def rows(url: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def customers_of(simulator: Simulator) -> dict[str, int]:
    return {
        simulator.data_of(p.index).chain_id: len(simulator.data_of(p.index).customers)
        for p in simulator.properties
    }


async def test_every_property_is_loaded_through_its_own_token(
    connected: tuple[Store, Settings], simulator: Simulator, database_url: str
) -> None:
    store, settings = connected
    simulator.reset_stats()
    result = await run_fleet(
        store, settings, "backfill", jobs.backfill(), FleetOptions(concurrency=3)
    )
    assert result.status == "succeeded", result.summary()
    assert len(result.outcomes) == len(simulator.properties)
    mirrored = dict(
        rows(database_url, "select chain_id::text, count(*) from public.guests group by 1")
    )
    assert mirrored == customers_of(simulator)
    # the portfolio's two enterprises both have their reservations
    portfolio = next(p for p in simulator.properties if p.is_portfolio)
    by_enterprise = dict(
        rows(
            database_url, "select enterprise_id::text, count(*) from public.reservations group by 1"
        )
    )
    assert all(by_enterprise.get(e, 0) > 0 for e in portfolio.enterprise_ids)
    # one run per connection, each on its own token's budget, never over it, no 429
    runs = rows(
        database_url,
        "select count(distinct connection_id), count(*) from public.sync_runs where job = 'backfill'",
    )
    assert runs == [(len(simulator.properties), len(simulator.properties))]
    stats = simulator.stats()
    assert stats["rate_limited"] == 0
    per_token = stats["per_token"]
    assert len(per_token) == len(simulator.properties)
    assert all(0 < t["max_in_window"] <= LIMIT for t in per_token.values())
    # what each token covers was asked of Mews and recorded
    covered = dict(
        rows(
            database_url,
            "select integration_id::text, cardinality(enterprise_ids) from public.connections",
        )
    )
    assert sorted(covered.values()) == [1] * (len(simulator.properties) - 1) + [2]


async def test_four_concurrent_invocations_never_poll_one_connection_twice_at_once(
    database_url: str,
) -> None:
    config = SimulatorConfig(
        properties=20,
        customers=3,
        history_days=HISTORY_DAYS,
        rate_limit=LIMIT,
        rate_window_seconds=WINDOW,
        latency_ms=5,
        seed=3,
    )
    with running_simulator(config) as sim:
        settings = settings_for(database_url, sim)
        stores = [await open_store(settings) for _ in range(4)]
        try:
            for prop in sim.properties:
                await register_manual(stores[0], settings, prop.access_token, prop.name)
            results: list[FleetResult] = await asyncio.gather(
                *(
                    run_fleet(
                        store, settings, "poll_changes", jobs.poll(), FleetOptions(concurrency=3)
                    )
                    for store in stores
                )
            )
        finally:
            for store in stores:
                await store.aclose()
    assert all(r.ok for r in results), [r.summary() for r in results]
    runs = rows(
        database_url,
        "select connection_id::text, started_at, finished_at from public.sync_runs"
        " where job = 'poll_changes' order by connection_id, started_at",
    )
    polled = {connection for connection, _, _ in runs}
    assert len(polled) == 20  # every one polled
    for (a, _, a_end), (b, b_start, _) in itertools.pairwise(runs):
        if a == b:
            assert a_end <= b_start  # the same connection: one pass after the other, never at once
    # the work was shared: more than one invocation served connections
    assert sum(1 for r in results if r.outcomes) > 1


async def test_a_refused_token_costs_only_its_own_connection(
    connected: tuple[Store, Settings], simulator: Simulator, database_url: str
) -> None:
    store, settings = connected
    refused = simulator.properties[2]
    # Mews disables the integration and its webhook is lost (delivered nowhere): the token is
    # refused (401) while the connection still looks active here
    nowhere = simulator.url + "/_admin/properties"
    simulator.integration_webhook("IntegrationDisabled", target=refused.index, url=nowhere)
    try:
        first = await run_fleet(store, settings, "poll_changes", jobs.poll(), FleetOptions())
        statuses = {o.name: o.status for o in first.outcomes}
        assert statuses.pop(refused.name) == "failed"
        assert set(statuses.values()) == {"succeeded"}
        health = {h["name"]: h for h in await store.call("connections_health")}
        assert health[refused.name]["status"] == "unauthorized"
        assert health[refused.name]["unauthorized"] == 1
        # paused until its token changes: the next invocation does not call Mews with it
        again = await run_fleet(store, settings, "poll_changes", jobs.poll(), FleetOptions())
        assert refused.name not in {o.name for o in again.outcomes}
    finally:
        simulator.integration_webhook("IntegrationEnabled", target=refused.index, url=nowhere)


# The budget cancels Mews requests in flight; httpcore's asyncio backend schedules the close of
# a cancelled request's socket rather than awaiting it (encode/httpx#825), so under load the
# garbage collector may find a socket first and warn. Only that warning is let through here;
# every assertion stands (seen once in 1,356 tests under CI load, 2026-12-06).
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning"
)
async def test_a_pass_cut_short_by_the_budget_is_carried_on_by_the_next_invocation(
    database_url: str,
) -> None:
    config = SimulatorConfig(
        properties=2,
        customers=400,
        rate_limit=LIMIT,
        rate_window_seconds=WINDOW,
        latency_ms=100,
        seed=5,
    )
    with running_simulator(config) as sim:
        settings = settings_for(database_url, sim)
        store = await open_store(settings)
        try:
            for prop in sim.properties:
                await register_manual(store, settings, prop.access_token, prop.name)
            short = FleetOptions(budget_seconds=1.5, concurrency=2)
            passes: list[FleetResult] = []
            while True:
                passes.append(await run_fleet(store, settings, "backfill", jobs.backfill(), short))
                if all(o.completed for o in passes[-1].outcomes) and passes[-1].outcomes:
                    break
                assert len(passes) < 200, "the first load never finished"
        finally:
            await store.aclose()
        expected = sum(len(sim.data_of(p.index).customers) for p in sim.properties)
    cut = [o for p in passes for o in p.outcomes if not o.completed]
    assert cut, "the budget never cut a pass short: the test proves nothing"
    assert all(o.status == "partial" and "time budget" in (o.error or "") for o in cut)
    assert rows(database_url, "select count(*) from public.guests") == [(expected,)]


@contextmanager
def webhook_receiver(settings: Settings, secret: str) -> Iterator[str]:
    """Our webhook intake (``accept_webhook``, as the `mews_webhook` function runs it) over
    HTTP; yields the URL Mews is given (with the secret)."""

    async def receive(request: Request) -> JSONResponse:
        store: Store | None = None

        async def opened() -> Store:
            nonlocal store
            store = await open_store(settings)
            return store

        try:
            result = await accept_webhook(
                opened,
                await request.body(),
                request.query_params.get("Token"),
                secret=secret,
                encryption_key=settings.token_encryption_key.get_secret_value()
                if settings.token_encryption_key
                else None,
            )
        finally:
            if store is not None:
                await store.aclose()
        return JSONResponse(result.body, result.status)

    app = Starlette(routes=[Route("/webhook", receive, methods=["POST"])])
    with serve_in_thread(app) as server:
        yield f"{server.http_url}/webhook?Token={secret}"


async def test_properties_connected_rotated_and_deleted_by_integration_webhooks(
    database_url: str,
) -> None:
    settings = load_settings(
        database_url=database_url,
        mews_access_token="",
        token_encryption_key=Fernet.generate_key().decode(),
    )
    with (
        webhook_receiver(settings, "s3cret") as url,
        running_simulator(SimulatorConfig(properties=3, customers=25, webhook_url=url)) as sim,
    ):
        settings = settings.model_copy(update={"mews_platform_url": sim.url})
        hotel = sim.properties[1]
        assert sim.integration_webhook("IntegrationCreated", target=hotel.index)["status"] == 202
        store = await open_store(settings)
        try:
            first = await run_fleet(
                store, settings, "poll_changes", jobs.poll([SPECS["customers"]])
            )
            assert [(o.name, o.status) for o in first.outcomes] == [(hotel.name, "succeeded")]
            chains = dict(
                rows(database_url, "select chain_id::text, count(*) from public.guests group by 1")
            )
            assert chains == {hotel.chain_id: len(sim.data_of(hotel.index).customers)}

            # Mews changes both hotels; only the connected one's events are served, the other's
            # are kept and reported
            sim.mutate(target=hotel.index, customers_updated=3)
            sim.mutate(target=2, customers_updated=2)
            await _until(lambda: _inbox(database_url) >= 2)
            events = await run_fleet(store, settings, "process_events", jobs.process_events)
            assert events.summary()["counts"]["customers_updated"] == 3
            unrouted = (await store.call("inbox_stats"))["unrouted"]
            assert unrouted["enterprises"] == list(sim.properties[2].enterprise_ids)

            # a new API key: the old token is refused by Mews, the connection uses the new one
            old_key = rows(database_url, "select token_key from public.connections")
            sim.integration_webhook("IntegrationApiKeyCreated", target=hotel.index)
            assert rows(database_url, "select token_key from public.connections") != old_key
            again = await run_fleet(
                store, settings, "poll_changes", jobs.poll([SPECS["customers"]])
            )
            assert [o.status for o in again.outcomes] == ["succeeded"]

            # deleted: the token is gone and nothing is claimed any more
            sim.integration_webhook("IntegrationDeleted", target=hotel.index)
            assert rows(
                database_url, "select status, access_token_encrypted from public.connections"
            ) == [("deleted", None)]
            assert (await run_fleet(store, settings, "poll_changes", jobs.poll())).outcomes == []
        finally:
            await store.aclose()


def _inbox(database_url: str) -> int:
    return int(
        rows(
            database_url, "select count(*) from public.event_inbox where source = 'general_webhook'"
        )[0][0]
    )


async def _until(condition: Callable[[], bool]) -> None:
    deadline = asyncio.get_running_loop().time() + 30.0
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_instances_share_every_connections_inbox_each_event_once(
    connected: tuple[Store, Settings], simulator: Simulator, database_url: str
) -> None:
    """process_events takes no connection lease (the inbox's rows are claimed SKIP LOCKED): two
    invocations at once serve every connection, and each event is completed once."""
    store, settings = connected
    hotels = [p for p in simulator.properties if not p.is_portfolio][:3]
    stored = 0
    for hotel in hotels:
        ids = sorted(simulator.data_of(hotel.index).customers)[:60]
        for n in range(0, len(ids), 5):
            body = {
                "EnterpriseId": hotel.enterprise_ids[0],
                "IntegrationId": hotel.integration_id,
                "Events": [
                    {"Discriminator": "CustomerUpdated", "Value": {"Id": i}} for i in ids[n : n + 5]
                ],
            }
            await store.call(
                "inbox_add",
                p_source="general_webhook",
                p_body_raw=json.dumps(body),
                p_enterprise_id=hotel.enterprise_ids[0],
            )
            stored += 1
    other = await open_store(settings)
    try:
        options = FleetOptions(exclusive=False, concurrency=2)
        results = await asyncio.gather(
            run_fleet(store, settings, "process_events", jobs.process_events, options),
            run_fleet(other, settings, "process_events", jobs.process_events, options),
        )
    finally:
        await other.aclose()
    assert all(r.ok for r in results), [r.summary() for r in results]
    # both served every connection (no lease), and together completed each event once
    assert all(len(r.outcomes) == len(simulator.properties) for r in results)
    completed = sum(r.summary()["counts"].get("inbox_completed", 0) for r in results)
    assert completed == stored
    assert rows(database_url, "select status, count(*) from public.event_inbox group by 1") == [
        ("done", stored)
    ]
