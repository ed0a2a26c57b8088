"""A poison record costs only itself: in a backfill page, a poll window, an inbox batch, and in
the quarantine, which keeps one entry per record version and resolves it once a valid version
is stored. Against the simulator (serving the poison records) and a real database."""

from __future__ import annotations

import asyncio
import copy
from datetime import timedelta
from typing import Any

import orjson
import psycopg
import pytest
from pydantic import BaseModel

from shared.db.store import Store, StoreError
from shared.mews.client import parse_records
from shared.mews.errors import MewsBadRequestError, MewsServerError
from shared.mews.models import Address, Company, Customer, IdentityDocument, Reservation, Resource
from shared.simulator.data import fmt
from shared.simulator.running import Simulator
from shared.sync.engine import SyncEngine
from shared.sync.events import process_events
from shared.sync.runs import Run, recorded_run
from tests.support.fixtures import load
from tests.sync.test_engine import mews_clock_passes

pytestmark = pytest.mark.anyio


def uuid_of(n: int) -> str:
    return f"0bad0000-0000-4000-8000-{n:012d}"


def serve(simulator: Simulator, *records: dict[str, Any]) -> None:
    """Let the simulator serve these customers as they are (the time indexes are rebuilt)."""
    for record in records:
        simulator.data.customers[record["Id"]] = record
    simulator.data.version += 1


def customer_like(simulator: Simulator, n: int, **changes: Any) -> dict[str, Any]:
    """A customer shaped like the generated ones, created 40 days ago, with ``changes``."""
    template = next(c for c in simulator.data.customers.values() if c["IsActive"])
    created = fmt(simulator.data.now - timedelta(days=40, minutes=n))
    record = {
        **copy.deepcopy(template),
        "Id": uuid_of(n),
        "Email": None,
        "CreatedUtc": created,
        "UpdatedUtc": created,
        "AddressId": None,
        "CompanyId": None,
    }
    record.update(changes)
    return record


def poison_customers(simulator: Simulator) -> list[dict[str, Any]]:
    """21 customers no database column can hold: ids that are not UUIDs (the record's own, its
    company's, its address's) and NUL characters (in a name, an unmapped field, a key)."""
    records = [customer_like(simulator, n, Id=f"not-a-uuid-{n}") for n in range(6)]
    records += [customer_like(simulator, n, CompanyId=f"company-{n}") for n in range(6, 11)]
    records += [customer_like(simulator, n, AddressId="12345") for n in range(11, 14)]
    records += [customer_like(simulator, n, LastName="Nu\x00ll") for n in range(14, 18)]
    records += [customer_like(simulator, n, AccountingCode="A\x00") for n in range(18, 20)]
    records += [{**customer_like(simulator, 20), "Odd\x00Key": "x"}]
    return records


UUID_FIELDS = [
    ("customers_getAll_response", "Customers", Customer, field)
    for field in ("Id", "ChainId", "CompanyId", "AddressId", "MergeTargetId", "UpdaterProfileId")
] + [
    ("companies_getAll_response", "Companies", Company, "MotherCompanyId"),
    ("addresses_getAll_response", "Addresses", Address, "AccountId"),
    ("identityDocuments_getAll_response", "IdentityDocuments", IdentityDocument, "CustomerId"),
    ("reservations_getAll_response", "Reservations", Reservation, "AccountId"),
    ("reservations_getAll_response", "Reservations", Reservation, "AssignedResourceId"),
    ("resources_getAll_response", "Resources", Resource, "EnterpriseId"),
]


@pytest.mark.parametrize(("fixture", "key", "model", "field"), UUID_FIELDS)
def test_an_id_that_is_not_a_uuid_rejects_its_record_and_only_it(
    fixture: str, key: str, model: type[BaseModel], field: str
) -> None:
    good, other = load(fixture)[key][:2]
    parsed = parse_records(model, [good, {**other, field: "12345"}])
    assert [item.id for item in parsed[0]] == [good["Id"]]  # type: ignore[attr-defined]
    assert [r.reason for r in parsed[2]] == [f"{field}: Value error, not a UUID"]


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"LastName": "Nu\x00ll"}, "at $.LastName"),
        ({"Notes": "\x00"}, "at $.Notes"),  # a field the model does not even read
        ({"Classifications": ["VeryImportant", "\x00"]}, "at $.Classifications[1]"),
        ({"Odd\x00Key": 1}, "in a key of $"),
    ],
)
def test_a_nul_character_anywhere_rejects_its_record_and_says_where(
    change: dict[str, Any], where: str
) -> None:
    good, other = load("customers_getAll_response")["Customers"][:2]
    parsed = parse_records(Customer, [good, {**other, **change}])
    assert len(parsed[0]) == 1
    assert [r.reason for r in parsed[2]] == [
        f"record: Value error, a NUL character (U+0000), which PostgreSQL cannot store, {where}"
    ]


def rows(database_url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(query).fetchall()


def mirror(database_url: str, table: str) -> dict[str, Any]:
    return {
        str(i): raw for i, raw in rows(database_url, f"select mews_id, raw from public.{table}")
    }


def quarantined(database_url: str) -> dict[str, tuple[Any, ...]]:
    """mews_id → (reason, raw, sightings, resolved)"""
    found = rows(
        database_url,
        "select mews_id, reason, raw, sightings, resolved_at is not null from public.quarantine",
    )
    return {r[0]: r[1:] for r in found}


def good_customers(simulator: Simulator, poison: list[dict[str, Any]]) -> dict[str, Any]:
    bad = {p["Id"] for p in poison}
    return {k: v for k, v in simulator.data.customers.items() if k not in bad}


async def test_poison_records_cost_only_themselves_in_a_backfill(
    engine: SyncEngine, simulator: Simulator, store: Store, database_url: str
) -> None:
    poison = poison_customers(simulator)
    serve(simulator, *poison)
    async with recorded_run(store, "backfill") as run:
        await engine.backfill("customers", run)
    assert mirror(database_url, "guests") == good_customers(simulator, poison)
    kept = quarantined(database_url)
    assert set(kept) == {p["Id"] for p in poison}
    assert "Id: Value error, not a UUID" in kept["not-a-uuid-0"][0]
    assert "CompanyId: Value error, not a UUID" in kept[uuid_of(6)][0]
    assert "at $.LastName" in kept[uuid_of(14)][0]
    assert kept[uuid_of(14)][1]["LastName"] == "Nu\ufffdll"  # the raw is kept, NUL replaced
    assert kept[uuid_of(20)][1]["Odd\ufffdKey"] == "x"
    # nothing is left for a later run: the run succeeded, and says how many it quarantined
    assert (run.status, run.error) == ("succeeded", None)
    assert run.counts["customers_quarantined"] == 21
    assert rows(
        database_url, "select status, error, counts->'customers_quarantined' from public.sync_runs"
    ) == [("succeeded", None, 21)]


async def test_a_page_the_database_refuses_is_bisected_to_the_record_it_refuses(
    engine: SyncEngine, simulator: Simulator, store: Store, database_url: str
) -> None:
    # valid for the model, too large for the integer column: only the database can refuse it
    heavy = copy.deepcopy(next(iter(simulator.data.reservations.values())))
    heavy["Id"] = uuid_of(1)
    heavy["PersonCounts"] = [{"AgeCategoryId": uuid_of(2), "Count": 10**12}]
    simulator.data.reservations[heavy["Id"]] = heavy
    simulator.data.version += 1
    async with recorded_run(store, "backfill") as run:
        counts = await engine.backfill("reservations", run)
    assert set(mirror(database_url, "reservations")) == set(simulator.data.reservations) - {
        heavy["Id"]
    }
    [(reason, raw, _, _)] = quarantined(database_url).values()
    assert reason.startswith("database refused it: upsert_reservations:")
    assert "out of range" in reason
    assert reason.endswith("[22003]")
    assert raw == heavy
    assert counts.quarantined == 1
    assert (run.status, run.counts["reservations_quarantined"]) == ("succeeded", 1)


async def test_a_refresh_by_id_stores_the_rest_when_one_record_breaks_a_constraint(
    engine: SyncEngine, simulator: Simulator, database_url: str
) -> None:
    await engine.scope()
    foreign = customer_like(simulator, 1, ChainId=uuid_of(99))  # a chain this hub does not know
    serve(simulator, foreign)
    ids = [*list(simulator.data.customers)[:9], foreign["Id"]]
    counts = await engine.refresh("customers", ids)
    assert set(mirror(database_url, "guests")) == set(ids) - {foreign["Id"]}
    [(reason, *_)] = quarantined(database_url).values()
    assert "foreign key" in reason
    assert reason.endswith("[23503]")
    assert counts.quarantined == 1


async def simulator_mutation(simulator: Simulator) -> list[str]:
    """Staff change customers in Mews; the ids they changed."""
    changed = await asyncio.to_thread(simulator.mutate, customers_added=2, customers_updated=3)
    return changed["customers_added"] + changed["customers_updated"]


async def test_a_poll_window_with_a_poison_record_completes_and_moves_its_high_water_mark(
    engine: SyncEngine, simulator: Simulator, store: Store, database_url: str
) -> None:
    await engine.backfill("customers")
    before = await store.call(
        "checkpoint_get", p_scope_id=simulator.data.chain_id, p_entity="customers", p_phase="poll"
    )
    engine.forget_scope()
    changed = await simulator_mutation(simulator)
    poison = customer_like(simulator, 1, CompanyId="company-1")
    poison["UpdatedUtc"] = simulator.data.customers[changed[0]]["UpdatedUtc"]
    serve(simulator, poison)
    await mews_clock_passes(engine, max(simulator.data.customers[i]["UpdatedUtc"] for i in changed))
    async with recorded_run(store, "poll_changes") as run:
        counts = await engine.poll("customers", run)
    after = await store.call(
        "checkpoint_get", p_scope_id=simulator.data.chain_id, p_entity="customers", p_phase="poll"
    )
    scope = await engine.scope()
    assert after["high_water_utc"] > before["high_water_utc"]
    assert after["high_water_utc"] == scope.now_utc.isoformat()
    assert counts.quarantined == 1
    assert mirror(database_url, "guests") == good_customers(simulator, [poison])
    assert set(quarantined(database_url)) == {poison["Id"]}
    assert (run.status, run.counts["customers_quarantined"]) == ("succeeded", 1)


async def test_the_same_poison_is_one_quarantine_entry_however_often_it_is_read(
    engine: SyncEngine, simulator: Simulator, store: Store, database_url: str
) -> None:
    poison = poison_customers(simulator)
    serve(simulator, *poison)
    await engine.backfill("customers")
    for _ in range(2):
        engine.forget_scope()
        await engine.poll("customers")
    async with recorded_run(store, "reconcile") as run:
        await engine.reconcile("customers", run)
    kept = quarantined(database_url)
    assert len(rows(database_url, "select 1 from public.quarantine")) == 21
    assert {mews_id: entry[2] >= 2 for mews_id, entry in kept.items()} == {
        p["Id"]: True for p in poison
    }
    assert (run.status, run.counts["customers_quarantined"]) == ("succeeded", 21)


async def test_a_quarantined_record_is_resolved_once_a_valid_version_is_stored(
    engine: SyncEngine, simulator: Simulator, database_url: str
) -> None:
    poison = customer_like(simulator, 1, CompanyId="company-1")
    serve(simulator, poison)
    await engine.backfill("customers")
    assert quarantined(database_url)[poison["Id"]][3] is False
    fixed = {**poison, "CompanyId": None, "UpdatedUtc": fmt(simulator.data.now)}
    serve(simulator, fixed)
    engine.forget_scope()
    await mews_clock_passes(engine, fixed["UpdatedUtc"])
    await engine.poll("customers")
    assert mirror(database_url, "guests")[poison["Id"]] == fixed
    assert quarantined(database_url)[poison["Id"]][3] is True


# -- the inbox ---------------------------------------------------------------------------


def webhook(enterprise_id: str, *customer_ids: str) -> str:
    events = [{"Discriminator": "CustomerUpdated", "Value": {"Id": i}} for i in customer_ids]
    return orjson.dumps(
        {"EnterpriseId": enterprise_id, "IntegrationId": uuid_of(77), "Events": events}
    ).decode()


async def deliver(store: Store, enterprise_id: str, *messages: list[str]) -> list[int]:
    added = [
        await store.call(
            "inbox_add",
            p_source="general_webhook",
            p_body_raw=webhook(enterprise_id, *ids),
            p_enterprise_id=enterprise_id,
        )
        for ids in messages
    ]
    return [int(a["id"]) for a in added]


def inbox(database_url: str) -> dict[int, tuple[str, str | None]]:
    return {
        i: (status, error)
        for i, status, error in rows(
            database_url, "select id, status, error from public.event_inbox"
        )
    }


async def test_an_event_naming_a_poison_record_never_fails_its_batch(
    engine: SyncEngine, simulator: Simulator, store: Store, database_url: str
) -> None:
    scope = await engine.scope()
    good = list(simulator.data.customers)[:6]
    chainless = customer_like(simulator, 1, ChainId="chain-1")
    nul = customer_like(simulator, 2, FirstName="\x00")
    serve(simulator, chainless, nul)
    ids = await deliver(
        store, scope.enterprise_id, good[:3], [chainless["Id"]], good[3:], [nul["Id"], good[0]]
    )
    async with recorded_run(store, "process_events") as run:
        await process_events(store, engine, run)
    assert inbox(database_url) == dict.fromkeys(ids, ("done", None))
    assert set(mirror(database_url, "guests")) == set(good)
    assert set(quarantined(database_url)) == {chainless["Id"], nul["Id"]}
    assert run.counts["inbox_completed"] == 4
    assert "inbox_failed" not in run.counts


class Refusing:
    """A sync engine whose refresh refuses any part naming a refused id (as Mews or the database
    would refuse the whole request), and records what it was asked."""

    def __init__(self, refuse: dict[str, BaseException]) -> None:
        self.refuse = refuse
        self.asked: list[tuple[str, list[str]]] = []
        self.stored: set[str] = set()

    async def refresh(self, entity: str, ids: list[str], run: Run | None = None) -> None:
        self.asked.append((entity, ids))
        for record_id in ids:
            if record_id in self.refuse:
                raise self.refuse[record_id]
        self.stored.update(ids)


@pytest.fixture
def enterprise_id() -> str:
    return uuid_of(500)


def refused_by_database(record_id: str) -> StoreError:
    return StoreError(
        "upsert_guests", "22P02", f'invalid input syntax for type uuid: "{record_id}"'
    )


async def test_only_the_events_naming_a_refused_id_fail_and_the_others_complete(
    store: Store, database_url: str, enterprise_id: str
) -> None:
    ids = [uuid_of(n) for n in range(40)]
    bad = ids[17]
    messages = [ids[i : i + 5] for i in range(0, 40, 5)] + [[bad, ids[0]]]
    inbox_ids = await deliver(store, enterprise_id, *messages)
    engine = Refusing({bad: refused_by_database(bad)})
    async with recorded_run(store, "process_events") as run:
        await process_events(store, engine, run)
    error = f'customers {bad}: upsert_guests: invalid input syntax for type uuid: "{bad}" [22P02]'
    failing = {inbox_ids[3], inbox_ids[8]}  # the two messages that name it
    assert inbox(database_url) == {
        i: ("failed", error) if i in failing else ("done", None) for i in inbox_ids
    }
    assert engine.stored == set(ids) - {bad}
    assert (run.counts["inbox_completed"], run.counts["inbox_failed"]) == (7, 2)
    assert run.status == "partial"
    assert run.error == f"2 inbox event(s) failed: {error}"


async def test_a_refused_event_is_dead_lettered_alone_after_its_last_attempt(
    store: Store, database_url: str, enterprise_id: str
) -> None:
    ids = [uuid_of(n) for n in range(6)]
    inbox_ids = await deliver(store, enterprise_id, ids[:3], ids[3:])
    refusal = MewsBadRequestError("Invalid CustomerIds.", operation="customers/getAll", status=400)
    engine = Refusing({ids[4]: refusal})
    async with recorded_run(store, "process_events") as run:
        await process_events(store, engine, run, max_attempts=1)
    statuses = {i: status for i, (status, _) in inbox(database_url).items()}
    assert statuses == {inbox_ids[0]: "done", inbox_ids[1]: "dead"}
    assert run.counts["inbox_dead"] == 1


async def test_a_failure_of_the_moment_fails_the_whole_batch_for_a_later_retry(
    store: Store, database_url: str, enterprise_id: str
) -> None:
    ids = [uuid_of(n) for n in range(6)]
    inbox_ids = await deliver(store, enterprise_id, ids[:3], ids[3:])
    outage = MewsServerError("Service unavailable", operation="customers/getAll", status=503)
    engine = Refusing(dict.fromkeys(ids, outage))
    async with recorded_run(store, "process_events") as run:
        await process_events(store, engine, run)
    assert engine.asked == [("customers", sorted(ids))]  # no bisecting around an outage
    assert inbox(database_url) == {i: ("failed", str(outage)) for i in inbox_ids}
    assert (run.status, run.counts["inbox_failed"]) == ("failed", 2)
