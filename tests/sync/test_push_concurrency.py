"""A push sends many edits at once: every guarantee of the one-by-one push still holds.

Against the simulator over real HTTP (with latency, so requests overlap, and a small request
limit, so the shared budget has to pace them): each edit is written once, the batch is read in
one request before and one after, nothing goes past the budget, progress adds up. With respx
(exact bodies, answers chosen per guest): guests of two chains are read and written with their
own ``ChainId``, a persistent 409, a refusal and a failure each cost only their own guest.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
import respx

from shared.db.store import Store
from shared.mews.client import MewsClient, RetryPolicy
from shared.mews.errors import MewsServerError
from shared.mews.ratelimit import PostgresRateLimiter
from shared.settings import load_settings
from shared.simulator.running import Simulator, running_simulator
from shared.simulator.server import SimulatorConfig
from shared.sync.engine import SyncEngine
from shared.sync.entities import SPECS
from shared.sync.push import MAX_ATTEMPTS, push_changes
from shared.sync.runs import Run, recorded_run
from tests.support.respx_mews import TOKENS, bodies
from tests.support.rows import CHAIN_ID, ENTERPRISE_ID, OTHER_CHAIN_ID, OTHER_ENTERPRISE_ID
from tests.support.rows import guest_row as make_guest_row
from tests.support.tenancy import add_user, seed_tenancy
from tests.sync.test_push import (
    active_ids,
    conflict_rows,
    guest_state,
    mews_edit,
    seed_guests,
    staff_update,
)

pytestmark = pytest.mark.anyio

LIMIT, WINDOW = 20, 3.0  # a small limit, so a push of a few dozen edits must be paced
CONCURRENCY = 6


class CountingTransport(httpx.AsyncHTTPTransport):
    """Real HTTP, counting the requests in flight at once."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0
        self.most_in_flight = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            return await super().handle_async_request(request)
        finally:
            self.in_flight -= 1


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    config = SimulatorConfig(
        customers=300, latency_ms=50, rate_limit=LIMIT, rate_window_seconds=WINDOW
    )
    with running_simulator(config) as sim:
        yield sim


@pytest.fixture
def transport() -> CountingTransport:
    return CountingTransport()


@pytest.fixture
async def engine(
    simulator: Simulator, store: Store, transport: CountingTransport
) -> AsyncIterator[SyncEngine]:
    settings = load_settings(mews_platform_url=simulator.url)
    limiter = PostgresRateLimiter(
        store,
        settings.mews_access_token.get_secret_value(),
        limit=LIMIT,
        window_seconds=WINDOW,
        guard_seconds=0.3,
    )
    async with httpx.AsyncClient(transport=transport) as http:
        client = MewsClient.from_settings(
            settings, http, limiter, retry=RetryPolicy(base_delay=0.05, max_delay=2)
        )
        yield SyncEngine(store, client, lag=timedelta(0))


async def loaded(engine: SyncEngine, simulator: Simulator, database_url: str) -> str:
    """The customers mirrored and a staff member of the enterprise; the stats start afresh."""
    await engine.backfill(SPECS["customers"])
    await asyncio.to_thread(simulator.reset_stats)
    with psycopg.connect(database_url, autocommit=True) as conn:
        return add_user(conn, enterprise_id=simulator.data.enterprises[0]["Id"])


async def push(store: Store, engine: SyncEngine, **options: Any) -> tuple[Run, list[int]]:
    progress: list[int] = []
    async with recorded_run(store, "push_changes") as run:
        await push_changes(store, engine, run, progress=progress.append, **options)
    return run, progress


# -- against the simulator ---------------------------------------------------------------------


async def test_many_edits_go_out_together_each_once_and_within_the_budget(
    engine: SyncEngine,
    simulator: Simulator,
    store: Store,
    database_url: str,
    transport: CountingTransport,
) -> None:
    user = await loaded(engine, simulator, database_url)
    transport.most_in_flight = 0  # the first load's windows are not the push
    data = simulator.data.customers
    ids = [i for i in active_ids(simulator, 120) if data[i]["Email"]][:30]
    cleared = ids[::5]
    for n, customer_id in enumerate(ids):
        clear = ", email = null" if customer_id in cleared else ""
        staff_update(
            database_url,
            user,
            f"update public.guests set notes = %s{clear} where mews_id = %s",
            (f"note {n}", customer_id),
        )
    run, progress = await push(store, engine, concurrency=CONCURRENCY)
    stats = await asyncio.to_thread(simulator.stats)
    # one write per edit (a clear is the second request of its guest), one read of the batch
    # before the writes and one after them to mirror what Mews holds
    assert stats["operations"] == {
        "customers/getAll": 2,
        "customers/update": len(ids),
        "accounts/update": len(cleared),
    }
    # 30 guests at 6 at a time went past one window: the shared budget paced them
    assert stats["requests"] > LIMIT
    assert stats["rate_limited"] == engine.client.stats.rate_limited == 0
    assert stats["max_in_window"] <= LIMIT
    assert 1 < transport.most_in_flight <= CONCURRENCY
    assert (run.status, run.counts["pushed"], sum(progress)) == ("succeeded", len(ids), len(ids))
    for n, customer_id in enumerate(ids):
        assert data[customer_id]["Notes"] == f"note {n}"
        assert (data[customer_id]["Email"] is None) == (customer_id in cleared)
        state = guest_state(database_url, customer_id)
        assert (state["status"], state["changes"], state["notes"]) == ("pushed", None, f"note {n}")
    # a second push finds nothing to do and asks Mews nothing
    await asyncio.to_thread(simulator.reset_stats)
    again, progress = await push(store, engine)
    assert (again.status, progress) == ("succeeded", [])
    assert (await asyncio.to_thread(simulator.stats))["operations"] == {}


async def test_conflicts_in_a_batch_are_decided_and_logged_guest_by_guest(
    engine: SyncEngine, simulator: Simulator, store: Store, database_url: str
) -> None:
    user = await loaded(engine, simulator, database_url)
    early, late, elsewhere, *plain = active_ids(simulator, 12)
    # Mews stamps whole seconds: its clock is set seconds back for the edit before the staff's
    # and seconds ahead for those after them, instead of waiting for the next second
    simulator.app.clock.shift(-5)
    mews_edit(simulator, early, Notes="Mews: early")
    for n, customer_id in enumerate([early, late, elsewhere, *plain]):
        staff_update(
            database_url,
            user,
            "update public.guests set notes = %s where mews_id = %s",
            (f"staff {n}", customer_id),
        )
    simulator.app.clock.shift(10)
    mews_edit(simulator, late, Notes="Mews: late")
    mews_edit(simulator, elsewhere, Email="elsewhere@changed-in-mews.example")
    run, progress = await push(store, engine, concurrency=CONCURRENCY)
    data = simulator.data.customers
    assert data[early]["Notes"] == "staff 0"  # the later write: the staff's
    assert data[late]["Notes"] == "Mews: late"  # the later write: Mews'
    assert data[elsewhere]["Notes"] == "staff 2"  # another field: no conflict
    assert data[elsewhere]["Email"] == "elsewhere@changed-in-mews.example"
    assert sorted(conflict_rows(database_url)) == sorted(
        [
            (early, "notes", "staff 0", "Mews: early", "local_won"),
            (late, "notes", "staff 1", "Mews: late", "mews_won"),
        ]
    )
    stats = await asyncio.to_thread(simulator.stats)
    assert stats["operations"]["customers/update"] == 11  # all but the one Mews won
    assert guest_state(database_url, late)["status"] == "mews_won"
    assert guest_state(database_url, late)["notes"] == "Mews: late"  # mirrored
    assert run.counts["push_conflicts"] == 2
    assert (run.status, run.counts["pushed"], sum(progress)) == ("succeeded", 11, 12)


# -- with respx: two chains, answers chosen per guest ------------------------------------------

API = "https://mews.test/api/connector/v1/"
BEFORE = "2026-01-01T10:00:00Z"


class FakeMews:
    """customers/getAll, customers/update and accounts/update over a dict of customers, as
    Mews answers a portfolio token (a chain must be named), with an answer (409, 403, 500)
    chosen per guest for its writes."""

    def __init__(self, customers: list[dict[str, Any]]) -> None:
        self.customers = {c["Id"]: c for c in customers}
        self.answers: dict[str, int] = {}
        self.clock = datetime(2026, 2, 1, 10, 0, tzinfo=UTC)

    def get_all(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if not body.get("ChainIds"):
            return no_chain()
        found = [
            c
            for i in body["CustomerIds"]
            if (c := self.customers.get(i)) and c["ChainId"] in body["ChainIds"]
        ]
        return httpx.Response(200, json={"Customers": found, "Cursor": None})

    def update(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body.get("ChainId") != self.customers[body["CustomerId"]]["ChainId"]:
            return no_chain()
        return self._write(body["CustomerId"], {"Notes": body["Notes"]}) or httpx.Response(
            200, json=self.customers[body["CustomerId"]]
        )

    def accounts(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        [update] = body["AccountUpdates"]
        if body.get("ChainId") != self.customers[update["Id"]]["ChainId"]:
            return no_chain()
        return self._write(update["Id"], {"Email": None}) or httpx.Response(
            200, json={"Accounts": []}
        )

    def _write(self, customer_id: str, values: dict[str, Any]) -> httpx.Response | None:
        """The error chosen for this guest, or None once the values are written."""
        status = self.answers.get(customer_id)
        if status is not None:
            return httpx.Response(status, json={"Message": f"refused ({status})", "RequestId": "r"})
        self.clock += timedelta(seconds=1)
        customer = self.customers[customer_id]
        customer.update(values, UpdatedUtc=self.clock.strftime("%Y-%m-%dT%H:%M:%SZ"))
        return None


def no_chain() -> httpx.Response:
    return httpx.Response(400, json={"Message": "Invalid ChainId.", "RequestId": "r400"})


def mews_customer(row: dict[str, Any]) -> dict[str, Any]:
    return {**row["raw"], "IsActive": True, "Notes": "", "Email": "old@example.com"}


def configuration() -> httpx.Response:
    enterprise = {
        "Id": ENTERPRISE_ID,
        "ChainId": CHAIN_ID,
        "Name": "Alpha Prague",
        "CreatedUtc": "2024-01-01T00:00:00Z",
    }
    return httpx.Response(200, json={"NowUtc": "2026-03-01T00:00:00Z", "Enterprise": enterprise})


@pytest.fixture
def two_chains(database_url: str) -> dict[str, Any]:
    """Four guests in the first chain, one in the second, each edited by its own staff."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        seed_tenancy(conn)
        users = {
            CHAIN_ID: add_user(conn, enterprise_id=ENTERPRISE_ID),
            OTHER_CHAIN_ID: add_user(conn, enterprise_id=OTHER_ENTERPRISE_ID),
        }
    rows = [make_guest_row(updated=BEFORE, notes="", email="old@example.com") for _ in range(4)]
    rows.append(
        make_guest_row(chain_id=OTHER_CHAIN_ID, updated=BEFORE, notes="", email="old@example.com")
    )
    seed_guests(database_url, rows)
    for n, row in enumerate(rows):
        clear = ", email = null" if n == 0 else ""
        staff_update(
            database_url,
            users[row["chain_id"]],
            f"update public.guests set notes = %s{clear} where mews_id = %s",
            (f"staff {n}", row["mews_id"]),
        )
    return {"rows": rows, "mews": FakeMews([mews_customer(r) for r in rows])}


def mock_mews(mock: respx.MockRouter, mews: FakeMews) -> dict[str, respx.Route]:
    return {
        "read": mock.post(API + "customers/getAll").mock(side_effect=mews.get_all),
        "update": mock.post(API + "customers/update").mock(side_effect=mews.update),
        "clear": mock.post(API + "accounts/update").mock(side_effect=mews.accounts),
        "configuration": mock.post(API + "configuration/get").mock(return_value=configuration()),
    }


async def test_each_chain_is_read_in_one_request_and_written_with_its_chain_id(
    mews_client: MewsClient, store: Store, database_url: str, two_chains: dict[str, Any]
) -> None:
    rows, mews = two_chains["rows"], two_chains["mews"]
    alpha = sorted(r["mews_id"] for r in rows if r["chain_id"] == CHAIN_ID)
    beta = [r["mews_id"] for r in rows if r["chain_id"] == OTHER_CHAIN_ID]
    with respx.mock(assert_all_called=True) as mock:
        routes = mock_mews(mock, mews)
        run, progress = await push(store, SyncEngine(store, mews_client), concurrency=3)
    reads = [(b["ChainIds"], b["CustomerIds"]) for b in bodies(routes["read"])]
    # the batch before the writes, then again after them (to mirror): per chain, all its guests
    assert reads == [([CHAIN_ID], alpha), ([OTHER_CHAIN_ID], beta)] * 2
    chain_of = {r["mews_id"]: r["chain_id"] for r in rows}
    updates = bodies(routes["update"])
    assert sorted(b["CustomerId"] for b in updates) == sorted(chain_of)  # each guest once
    assert all(b["ChainId"] == chain_of[b["CustomerId"]] for b in updates)
    [clear] = bodies(routes["clear"])
    assert clear == {
        **TOKENS,
        "ChainId": CHAIN_ID,
        "AccountUpdates": [
            {
                "Id": rows[0]["mews_id"],
                "Discriminator": "Customer",
                "Customer": {"Email": {"Value": None}},
            }
        ],
    }
    assert (run.status, run.counts["pushed"], sum(progress)) == ("succeeded", 5, 5)
    for n, row in enumerate(rows):
        state = guest_state(database_url, row["mews_id"])
        assert (state["status"], state["notes"]) == ("pushed", f"staff {n}")


async def test_a_conflict_a_refusal_and_a_failure_cost_only_their_own_guest(
    mews_client: MewsClient, store: Store, database_url: str, two_chains: dict[str, Any]
) -> None:
    rows, mews = two_chains["rows"], two_chains["mews"]
    conflicted, refused, failing = (r["mews_id"] for r in rows[1:4])
    mews.answers = {conflicted: 409, refused: 403, failing: 500}
    engine = SyncEngine(store, mews_client)
    with respx.mock(assert_all_called=True) as mock:
        routes = mock_mews(mock, mews)
        with pytest.raises(MewsServerError):
            await push(store, engine, concurrency=3)
    sent = [b["CustomerId"] for b in bodies(routes["update"])]
    assert sent.count(conflicted) == MAX_ATTEMPTS  # re-read, re-merged and resubmitted
    assert sent.count(refused) == 1  # never retried
    assert sent.count(failing) == 2  # the client's own retries
    for pushed in (rows[0], rows[4]):  # the others went through, were mirrored and recorded
        state = guest_state(database_url, pushed["mews_id"])
        assert (state["status"], state["changes"]) == ("pushed", None)
    assert guest_state(database_url, conflicted)["status"] == "pending"
    assert "409" in (guest_state(database_url, conflicted)["error"] or "")
    assert guest_state(database_url, refused)["status"] == "refused"
    assert [(r[0], r[4]) for r in conflict_rows(database_url)] == [(refused, "refused_by_mews")]
    # the failed guest was not recorded: its edit waits, untouched, for the next push
    state = guest_state(database_url, failing)
    assert (state["status"], state["changes"]) == ("pending", {"notes": "staff 3"})
    assert state["error"] is None
    # the next push: Mews answers now; the 409 guest goes through, the refusal is not resent
    mews.answers = {}
    with respx.mock(assert_all_called=False) as mock:
        routes = mock_mews(mock, mews)
        run, progress = await push(store, engine)
    assert sorted(b["CustomerId"] for b in bodies(routes["update"])) == sorted(
        [conflicted, failing]
    )
    assert (run.status, run.counts["pushed"], sum(progress)) == ("succeeded", 2, 2)


async def test_edits_left_pending_make_the_run_partial_and_are_counted(
    mews_client: MewsClient, store: Store, database_url: str, two_chains: dict[str, Any]
) -> None:
    rows, mews = two_chains["rows"], two_chains["mews"]
    conflicted = rows[2]["mews_id"]
    mews.answers = {conflicted: 409}
    with respx.mock(assert_all_called=True) as mock:
        mock_mews(mock, mews)
        run, progress = await push(store, SyncEngine(store, mews_client), concurrency=2, limit=2)
    # batches of two until none is left; the one Mews kept refusing with 409 is tried once
    assert (run.status, run.counts["pushed"], sum(progress)) == ("partial", 4, 5)
    assert (run.counts["push_kept_pending"], run.counts["push_still_pending"]) == (1, 1)
    assert run.error == "1 staff edit(s) still pending; the next push retries them"
    assert guest_state(database_url, conflicted)["changes"] == {"notes": "staff 2"}
