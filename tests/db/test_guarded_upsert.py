"""The guarded batch upsert of records (``upsert_<table>(p_scope_id, p_records)``, the one way the
mirror is written): Mews UpdatedUtc decides, ties break deterministically, replays change
nothing, a record the database cannot hold fails with a data SQLSTATE. Run over both transports
against the real database."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import pytest

from shared.db.store import Store, StoreError
from tests.support.rows import CHAIN_ID
from tests.support.tenancy import seed_tenancy

pytestmark = pytest.mark.anyio

GUEST = "0b9e1b7c-1111-4e4e-9c9c-000000000001"


async def fetch_guest(database_url: str, mews_id: str) -> tuple[Any, ...] | None:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "select first_name, mews_updated_utc, synced_at from public.guests where mews_id = %s",
            (mews_id,),
        ).fetchone()


def record(
    mews_id: str | None = None, *, updated: str = "2026-01-01T10:00:00Z", **fields: Any
) -> dict[str, Any]:
    """A Mews customer as ``customers/getAll`` returns it (PascalCase, raw)."""
    return {
        "Id": mews_id or str(uuid.uuid4()),
        "ChainId": CHAIN_ID,
        "LastName": "Novák",
        "UpdatedUtc": updated,
        "Classifications": [],
        "Options": [],
        "IsActive": True,
        **fields,
    }


def counts(
    received: int, inserted: int = 0, updated: int = 0, unchanged: int = 0
) -> dict[str, int]:
    """What the upsert answers for a page (nothing was quarantined in these tests)."""
    return {
        "received": received,
        "inserted": inserted,
        "updated": updated,
        "unchanged": unchanged,
        "resolved": 0,
    }


async def upsert_records(store: Store, *records: dict[str, Any]) -> dict[str, int]:
    result: dict[str, int] = await store.call(
        "upsert_guests", p_scope_id=CHAIN_ID, p_records=list(records)
    )
    return result


async def test_records_are_inserted_with_their_columns_derived_in_the_database(
    any_store: Store, seeded_database_url: str
) -> None:
    ada = record(
        GUEST,
        FirstName="Ada",
        BirthDate="1984-03-14T00:00:00Z",  # a date-time read as its date, as the model reads it
        Classifications=["VeryImportant"],
        CreatedUtc="2025-12-01T08:00:00.1234567Z",  # seven digits: cut, not rounded
    )
    result = await upsert_records(any_store, ada, record())
    assert result == counts(2, inserted=2)
    with psycopg.connect(seeded_database_url) as conn:
        row = conn.execute(
            "select first_name, birth_date::text, classifications, has_ota_email, is_active,"
            " to_char(mews_created_utc at time zone 'UTC', 'HH24:MI:SS.US'), raw"
            " from public.guests where mews_id = %s",
            (GUEST,),
        ).fetchone()
    assert row == ("Ada", "1984-03-14", ["VeryImportant"], False, True, "08:00:00.123456", ada)


async def test_a_newer_record_overwrites(any_store: Store, seeded_database_url: str) -> None:
    await upsert_records(any_store, record(GUEST, FirstName="Ada"))
    result = await upsert_records(
        any_store, record(GUEST, updated="2026-01-02T10:00:00Z", FirstName="Grace")
    )
    assert result == counts(1, updated=1)
    row = await fetch_guest(seeded_database_url, GUEST)
    assert row is not None
    assert row[0] == "Grace"


async def test_an_older_record_is_ignored(any_store: Store, seeded_database_url: str) -> None:
    await upsert_records(
        any_store, record(GUEST, updated="2026-01-02T10:00:00Z", FirstName="Grace")
    )
    before = await fetch_guest(seeded_database_url, GUEST)
    result = await upsert_records(any_store, record(GUEST, FirstName="Ada"))
    assert result == counts(1, unchanged=1)
    assert await fetch_guest(seeded_database_url, GUEST) == before


async def test_a_replayed_page_of_records_changes_nothing_not_even_synced_at(
    any_store: Store, seeded_database_url: str
) -> None:
    page = [record(GUEST, FirstName="Ada"), record(FirstName="Bob")]
    await upsert_records(any_store, *page)
    before = await fetch_guest(seeded_database_url, GUEST)
    result = await upsert_records(any_store, *page)
    assert result == counts(2, unchanged=2)
    assert await fetch_guest(seeded_database_url, GUEST) == before


async def test_a_timestamp_tie_ends_in_the_same_state_whatever_the_arrival_order(
    any_store: Store, seeded_database_url: str
) -> None:
    """Two versions with one UpdatedUtc: the tie breaks on the hash of the raw JSON, so the same
    version wins whichever came first, in two calls or in one page."""
    ada, grace = record(GUEST, FirstName="Ada"), record(GUEST, FirstName="Grace")
    winners = []
    for pages in (([ada], [grace]), ([grace], [ada]), ([ada, grace],), ([grace, ada],)):
        with psycopg.connect(seeded_database_url, autocommit=True) as conn:
            conn.execute("delete from public.guests")
        for page in pages:
            await upsert_records(any_store, *page)
        winners.append((await fetch_guest(seeded_database_url, GUEST) or ("",))[0])
    assert winners[0] in ("Ada", "Grace")
    assert winners == [winners[0]] * 4


async def test_a_page_with_the_same_record_twice_keeps_the_newest(
    any_store: Store, seeded_database_url: str
) -> None:
    result = await upsert_records(
        any_store,
        record(GUEST, updated="2026-01-03T00:00:00Z", FirstName="New"),
        record(GUEST, FirstName="Old"),
    )
    assert result == counts(2, inserted=1)
    row = await fetch_guest(seeded_database_url, GUEST)
    assert row is not None
    assert row[0] == "New"


async def test_a_page_over_1000_records_is_refused(any_store: Store) -> None:
    with pytest.raises(StoreError, match="at most 1000 records"):
        await upsert_records(any_store, *(record() for _ in range(1001)))


@pytest.mark.parametrize(
    ("change", "sqlstate"),
    [
        ({"Id": "not-a-uuid"}, "22P02"),
        ({"UpdatedUtc": "yesterday"}, "22007"),
        ({"LastName": None}, "23502"),
        ({"IsActive": None}, "23502"),  # absent is active; null is no value the model takes
        ({"Notes": "Nu\x00ll"}, "22P05"),
    ],
)
async def test_a_record_the_database_cannot_hold_refuses_its_page_with_a_data_error(
    any_store: Store, change: dict[str, Any], sqlstate: str
) -> None:
    """A data SQLSTATE (class 22 or 23) is what makes the engine bisect the page down to it."""
    with pytest.raises(StoreError) as refused:
        await upsert_records(any_store, record(), record(**change))
    assert refused.value.code == sqlstate


async def test_records_never_touch_a_staff_edit_waiting_for_mews(
    any_store: Store, seeded_database_url: str
) -> None:
    await upsert_records(any_store, record(GUEST, Email="old@example.com"))
    with psycopg.connect(seeded_database_url, autocommit=True) as conn:
        conn.execute(
            "update public.guests set local_changes = %s::jsonb, push_status = 'pending'"
            " where mews_id = %s",
            (json.dumps({"email": "new@example.com"}), GUEST),
        )
    await upsert_records(any_store, record(GUEST, updated="2026-01-02T00:00:00Z", Phone="+420"))
    with psycopg.connect(seeded_database_url) as conn:
        row = conn.execute(
            "select phone, local_changes, push_status from public.guests where mews_id = %s",
            (GUEST,),
        ).fetchone()
    assert row == ("+420", {"email": "new@example.com"}, "pending")


def test_the_document_sweep_covers_inactive_guests_too(database_url: str) -> None:
    """Deleted and merged-away guests stay mirrored, so their identity documents are swept too."""
    active, merged = record(), record(IsActive=False)
    with psycopg.connect(database_url, autocommit=True) as conn:
        seed_tenancy(conn)
        conn.execute(
            "select public.upsert_guests(%s, %s::jsonb)", (CHAIN_ID, json.dumps([active, merged]))
        )
        (page,) = conn.execute("select public.guest_ids_page(%s)", (CHAIN_ID,)).fetchone()  # type: ignore[misc]
    assert sorted(page) == sorted([active["Id"], merged["Id"]])
