"""The engine writes records as Mews sent them; the database derives the typed columns, each as
the Mews model reads the same record (the model's field of the column's name, or the few named
otherwise, below); a record the model refuses is quarantined with its reason, one the database refuses is bisected out and
quarantined with the database's; identity documents are swept side by side, every guest once,
inside the token's budget; a first load leaves the statistics of what it wrote current."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import orjson
import psycopg
import pytest

from shared.db.store import Store
from shared.mews.client import MewsClient, Page, RetryPolicy, parse_records
from shared.mews.models import Customer
from shared.mews.ratelimit import PostgresRateLimiter
from shared.settings import load_settings
from shared.simulator.running import Simulator, running_simulator
from shared.simulator.server import SimulatorConfig
from shared.sync import entities
from shared.sync.engine import ENTITIES, SyncEngine
from shared.sync.entities import SPECS
from shared.sync.runs import recorded_run

pytestmark = pytest.mark.anyio

# the simulator's collection of an entity, where its name differs
COLLECTIONS = {"identity_documents": "documents"}


def edge_cases(entity: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of the first records, reshaped the ways Mews may send them."""
    first, second, third = (copy.deepcopy(r) for r in records[:3])
    if entity == "customers":
        first["BirthDate"] = "1984-03-14T00:00:00Z"
        first["UpdatedUtc"] = "2026-01-01T10:00:00.1234567Z"
        for key in ("HasOtaEmail", "IsActive", "CreatedUtc"):
            second.pop(key, None)
        second["Classifications"] = None
    elif entity == "addresses":
        first["AccountType"] = "Company"  # not a guest's: neither way writes it
        second.pop("ChainId")
        second["UpdatedUtc"] = "2026-01-01T10:00:00.9999999Z"
    elif entity == "identity_documents":
        first.pop("Number")
        first["IssuanceDate"] = "2020-02-29"
        second.pop("IsVerified")
    elif entity == "companies":
        first["ContacPerson"] = first.pop("ContactPerson", None) or "Jan Novák"
        second["ContactPerson"], second["ContacPerson"] = None, "ignored when ContactPerson is"
        third["Iata"], third["Number"] = "OK", 12345678901234567
    elif entity == "reservations":
        first["PersonCounts"] = [{"Count": 2}, "not an object", {"Count": 1}, {}]
        second["PersonCounts"] = None
        third["CancelledUtc"] = "2026-01-01T10:00:00.5Z"
    elif entity == "resources":
        first["Data"] = {"Discriminator": "Object", "Value": None}
        second.pop("CreatedUtc", None)
    return [first, second, third, *records[3:]]


def mirror_columns(database_url: str, table: str) -> list[str]:
    """Every Mews column of a mirror table (not synced_at, not our local_* and push_* ones)."""
    with psycopg.connect(database_url) as conn:
        return [
            name
            for (name,) in conn.execute(
                "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0"
                " and not attisdropped and attname <> 'synced_at'"
                " and attname not like 'local\\_%%' and attname not like 'push\\_%%' order by attnum",
                (f"public.{table}",),
            )
        ]


def mirrored(database_url: str, table: str) -> list[tuple[Any, ...]]:
    """The Mews columns of every row of a mirror table, by Mews id."""
    listed = ", ".join(mirror_columns(database_url, table))
    with psycopg.connect(database_url) as conn:
        return conn.execute(f"select {listed} from public.{table} order by mews_id").fetchall()


def floor_number(_: Any, raw: dict[str, Any]) -> Any:
    data = raw.get("Data") or {}
    value = data.get("Value") if isinstance(data, dict) else None
    return value.get("FloorNumber") if isinstance(value, dict) else None


def person_count(_: Any, raw: dict[str, Any]) -> int:
    counts = raw.get("PersonCounts") or []
    return sum(int(c.get("Count") or 0) for c in counts if isinstance(c, dict))


# the columns a model does not name as the mirror does: (model's record, raw JSON) → value
NAMED_OTHERWISE: dict[str, dict[str, Callable[[Any, dict[str, Any]], Any]]] = {
    "addresses": {"guest_mews_id": lambda a, _: a.account_id},
    "identity_documents": {
        "guest_mews_id": lambda d, _: d.customer_id,
        "mews_updated_utc": lambda _, __: None,  # Mews gives documents no UpdatedUtc
    },
    "companies": {"iata": lambda _, raw: raw.get("Iata")},
    "reservations": {"person_count": person_count},
    "resources": {"floor_number": floor_number},
}


def expected_row(
    spec: entities.EntitySpec, columns: list[str], item: Any, raw: dict[str, Any], scope_id: str
) -> dict[str, Any] | None:
    """The row the mirror must hold for a record, read by the model (None: not mirrored). A
    column the model has no field for fails here: a new column needs its reading above."""
    if spec.name == "addresses" and (
        item.account_type not in (None, "Customer") or item.account_id is None
    ):
        return None  # a company's address: not mirrored
    row: dict[str, Any] = {}
    for column in columns:
        special = NAMED_OTHERWISE.get(spec.name, {}).get(column)
        if special is not None:
            row[column] = special(item, raw)
        elif column == "raw":
            row[column] = raw
        elif column == "mews_id":
            row[column] = item.id
        elif column.startswith("mews_"):
            row[column] = getattr(item, column.removeprefix("mews_"))
        elif column == f"{spec.scope}_id":  # the record's own, else the scope it was read in
            row[column] = getattr(item, column, None) or scope_id
        else:
            row[column] = getattr(item, column)
    return row


def as_stored(
    database_url: str, table: str, columns: list[str], row: dict[str, Any]
) -> tuple[Any, ...]:
    """``row`` read into the table's column types, with the hash of its raw JSON."""
    listed = ", ".join(columns)
    with psycopg.connect(database_url) as conn:
        stored = conn.execute(
            f"select {listed} from jsonb_populate_record(null::public.{table},"
            " %(row)s::jsonb || jsonb_build_object('raw_hash', md5((%(row)s::jsonb -> 'raw')::text)))",
            {"row": orjson.dumps(row).decode()},
        ).fetchone()
    assert stored is not None
    return tuple(stored)


@pytest.mark.parametrize("entity", ENTITIES)
async def test_the_database_derives_each_column_as_the_model_reads_the_record(
    entity: str, engine: SyncEngine, simulator: Simulator, store: Store, database_url: str
) -> None:
    spec = entities.entity(entity)
    table, collection = spec.table, COLLECTIONS.get(entity, entity)
    scope = await engine.scope()
    records = edge_cases(entity, list(getattr(simulator.data, collection).values())[:1000])
    items, raws, rejected = parse_records(spec.model, records)
    assert rejected == []
    scope_id = scope.scope_id(spec)
    result = await store.call(spec.upsert_function, p_scope_id=scope_id, p_records=records)
    columns = mirror_columns(database_url, table)
    expected = [
        as_stored(database_url, table, columns, row)
        for item, raw in zip(items, raws, strict=True)
        if (row := expected_row(spec, [c for c in columns if c != "raw_hash"], item, raw, scope_id))
    ]
    assert result["inserted"] == len(expected) > 0
    key = columns.index("mews_id")
    assert mirrored(database_url, table) == sorted(expected, key=lambda r: r[key])


@pytest.mark.parametrize("entity", ENTITIES)
async def test_the_upsert_resolves_the_open_quarantine_entries_of_what_it_stored(
    entity: str, engine: SyncEngine, simulator: Simulator, store: Store, database_url: str
) -> None:
    """In the same call, under the entity's own name and scope: another entity's entry, another
    scope's and a record not in the page stay open."""
    spec = entities.entity(entity)
    scope = await engine.scope()
    scope_id = scope.scope_id(spec)
    records = [
        r
        for r in getattr(simulator.data, COLLECTIONS.get(entity, entity)).values()
        if r.get("AccountType", "Customer") == "Customer"
    ][:3]
    stored, absent = records[0]["Id"], records[2]["Id"]
    other = "customers" if entity != "customers" else "companies"
    with psycopg.connect(database_url, autocommit=True) as conn:
        for name, scope_of, mews_id in (
            (entity, scope_id, stored),
            (entity, None, records[1]["Id"]),  # an entry of no scope: the record's everywhere
            (entity, uuid_of(98), stored),  # another chain's or enterprise's
            (other, scope_id, stored),
            (entity, scope_id, absent),
        ):
            conn.execute(
                "insert into public.quarantine (entity, scope_id, mews_id, reason)"
                " values (%s, %s, %s, 'bad once')",
                (name, scope_of, mews_id),
            )
    result = await store.call(spec.upsert_function, p_scope_id=scope_id, p_records=records[:2])
    assert result["resolved"] == 2
    with psycopg.connect(database_url) as conn:
        still_open = conn.execute(
            "select entity, scope_id::text, mews_id from public.quarantine"
            " where resolved_at is null order by 1, 2, 3"
        ).fetchall()
    assert sorted(still_open, key=str) == sorted(
        [(entity, uuid_of(98), stored), (other, scope_id, stored), (entity, scope_id, absent)],
        key=str,
    )


def uuid_of(n: int) -> str:
    return f"0bad0000-0000-4000-8000-{n:012d}"


async def test_a_record_the_model_or_the_database_refuses_costs_only_itself(
    engine: SyncEngine, simulator: Simulator, store: Store, database_url: str
) -> None:
    await engine.scope()
    good = list(simulator.data.customers.values())[:40]
    bad = {**good[7], "Id": uuid_of(1), "CompanyId": "company-1"}
    foreign = {**good[8], "Id": uuid_of(2), "ChainId": uuid_of(99)}  # a chain we do not know
    page = Page(Customer, [*good[:20], bad, *good[20:30], foreign, *good[30:]], None)
    async with recorded_run(store, "backfill") as run:
        counts = await engine.ingest(SPECS["customers"], page, run)
    assert (counts.fetched, counts.inserted, counts.quarantined) == (42, 40, 2)
    with psycopg.connect(database_url) as conn:
        stored = {str(i) for (i,) in conn.execute("select mews_id from public.guests")}
        kept = dict(conn.execute("select mews_id, reason from public.quarantine").fetchall())
    assert stored == {c["Id"] for c in good}
    assert kept[uuid_of(1)] == "CompanyId: Value error, not a UUID"
    assert kept[uuid_of(2)].startswith("database refused it: upsert_guests:")
    assert kept[uuid_of(2)].endswith("[23503]")


# -- the identity-document sweep ------------------------------------------------------------

LIMIT, WINDOW = 20, 2.0


@pytest.fixture
def limited_simulator() -> Iterator[Simulator]:
    """Enough guests for many document calls, and a small request limit."""
    config = SimulatorConfig(customers=1500, rate_limit=LIMIT, rate_window_seconds=WINDOW)
    with running_simulator(config) as sim:
        yield sim


class Watch:
    """What the document calls asked for, and how many were under way at once."""

    def __init__(self) -> None:
        self.customer_ids: list[str] = []
        self.in_flight = 0
        self.most_at_once = 0

    async def request(self, request: httpx.Request) -> None:
        if request.url.path.endswith("/identityDocuments/getAll"):
            self.customer_ids += orjson.loads(request.content)["CustomerIds"]
            self.in_flight += 1
            self.most_at_once = max(self.most_at_once, self.in_flight)

    async def response(self, response: httpx.Response) -> None:
        if response.request.url.path.endswith("/identityDocuments/getAll"):
            self.in_flight -= 1


@pytest.fixture
async def watched_engine(
    limited_simulator: Simulator, store: Store
) -> AsyncIterator[tuple[SyncEngine, Watch]]:
    settings = load_settings(mews_platform_url=limited_simulator.url)
    limiter = PostgresRateLimiter(
        store,
        settings.mews_access_token.get_secret_value(),
        limit=LIMIT,
        window_seconds=WINDOW,
        guard_seconds=0.3,
    )
    watch = Watch()
    hooks = {"request": [watch.request], "response": [watch.response]}
    async with httpx.AsyncClient(event_hooks=hooks) as http:
        client = MewsClient.from_settings(
            settings, http, limiter, retry=RetryPolicy(base_delay=0.05, max_delay=2)
        )
        yield SyncEngine(store, client, concurrency=4), watch


async def test_the_document_sweep_asks_for_every_guest_once_side_by_side_within_the_budget(
    watched_engine: tuple[SyncEngine, Watch], limited_simulator: Simulator, database_url: str
) -> None:
    engine, watch = watched_engine
    await engine.backfill(SPECS["customers"])
    await engine.backfill(SPECS["identity_documents"])
    stats = limited_simulator.stats()
    guests = set(limited_simulator.data.customers)
    assert sorted(watch.customer_ids) == sorted(guests)  # each guest once
    assert watch.most_at_once > 1  # side by side
    assert stats["rate_limited"] == 0
    assert stats["max_in_window"] <= LIMIT
    with psycopg.connect(database_url) as conn:
        documents = {
            str(i) for (i,) in conn.execute("select mews_id from public.guest_identity_documents")
        }
    assert documents == {
        d["Id"] for d in limited_simulator.data.documents.values() if d["CustomerId"] in guests
    }


async def test_a_first_load_leaves_the_statistics_of_what_it_wrote_current(
    engine: SyncEngine, simulator: Simulator, database_url: str
) -> None:
    """No job after it plans with no statistics (autovacuum is off here, as it may be anywhere)."""
    for entity in ("customers", "identity_documents"):
        await engine.backfill(SPECS[entity])
    with psycopg.connect(database_url) as conn:
        estimated = dict(
            conn.execute(
                "select relname, reltuples::bigint from pg_class where oid = any"
                " (array['public.guests', 'public.guest_identity_documents']::regclass[])"
            ).fetchall()
        )
        stored = {
            table: conn.execute(f"select count(*) from public.{table}").fetchone()[0]  # type: ignore[index]
            for table in estimated
        }
    assert estimated == stored
