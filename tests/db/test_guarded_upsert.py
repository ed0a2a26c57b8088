"""The guarded batch upsert: Mews UpdatedUtc decides, ties break deterministically, replays
change nothing. Run over both transports against the real database."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from shared.db.store import Store, StoreError, UpsertResult
from tests.support.rows import CHAIN_ID, guest_row
from tests.support.tenancy import seed_tenancy

pytestmark = pytest.mark.anyio

GUEST = "0b9e1b7c-1111-4e4e-9c9c-000000000001"


async def fetch_guest(database_url: str, mews_id: str) -> tuple[Any, ...] | None:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "select first_name, mews_updated_utc, synced_at from public.guests where mews_id = %s",
            (mews_id,),
        ).fetchone()


async def test_new_rows_are_inserted(any_store: Store, seeded_database_url: str) -> None:
    result = await any_store.upsert("guests", [guest_row(GUEST, first_name="Ada"), guest_row()])
    assert result == UpsertResult(received=2, inserted=2, updated=0, unchanged=0)
    row = await fetch_guest(seeded_database_url, GUEST)
    assert row is not None
    assert row[0] == "Ada"


async def test_a_newer_update_overwrites(any_store: Store, seeded_database_url: str) -> None:
    await any_store.upsert("guests", [guest_row(GUEST, first_name="Ada")])
    result = await any_store.upsert(
        "guests", [guest_row(GUEST, updated="2026-01-02T10:00:00Z", first_name="Grace")]
    )
    assert result == UpsertResult(received=1, inserted=0, updated=1, unchanged=0)
    row = await fetch_guest(seeded_database_url, GUEST)
    assert row is not None
    assert row[0] == "Grace"


async def test_an_older_update_is_ignored(any_store: Store, seeded_database_url: str) -> None:
    await any_store.upsert(
        "guests", [guest_row(GUEST, updated="2026-01-02T10:00:00Z", first_name="Grace")]
    )
    result = await any_store.upsert("guests", [guest_row(GUEST, first_name="Ada")])
    assert result == UpsertResult(received=1, inserted=0, updated=0, unchanged=1)
    row = await fetch_guest(seeded_database_url, GUEST)
    assert row is not None
    assert row[0] == "Grace"


async def test_a_replayed_page_changes_nothing_not_even_synced_at(
    any_store: Store, seeded_database_url: str
) -> None:
    page = [guest_row(GUEST, first_name="Ada"), guest_row(first_name="Bob")]
    await any_store.upsert("guests", page)
    before = await fetch_guest(seeded_database_url, GUEST)
    result = await any_store.upsert("guests", page)
    assert result == UpsertResult(received=2, inserted=0, updated=0, unchanged=2)
    assert await fetch_guest(seeded_database_url, GUEST) == before


async def test_a_timestamp_tie_ends_in_the_same_state_whatever_the_arrival_order(
    any_store: Store, seeded_database_url: str
) -> None:
    ada = guest_row(GUEST, first_name="Ada")
    grace = guest_row(GUEST, first_name="Grace")
    await any_store.upsert("guests", [ada])
    await any_store.upsert("guests", [grace])
    winner_one_way = (await fetch_guest(seeded_database_url, GUEST) or ("",))[0]

    other = "0b9e1b7c-1111-4e4e-9c9c-000000000002"
    ada2 = guest_row(other, first_name="Ada")
    grace2 = guest_row(other, first_name="Grace")
    ada2["raw"]["Id"] = grace2["raw"]["Id"] = GUEST  # same raw content as the first pair
    await any_store.upsert("guests", [grace2])
    await any_store.upsert("guests", [ada2])
    winner_other_way = (await fetch_guest(seeded_database_url, other) or ("",))[0]
    assert winner_one_way == winner_other_way


async def test_a_page_with_the_same_guest_twice_keeps_the_newest(
    any_store: Store, seeded_database_url: str
) -> None:
    result = await any_store.upsert(
        "guests",
        [
            guest_row(GUEST, updated="2026-01-03T00:00:00Z", first_name="New"),
            guest_row(GUEST, first_name="Old"),
        ],
    )
    assert result == UpsertResult(received=2, inserted=1, updated=0, unchanged=0)
    row = await fetch_guest(seeded_database_url, GUEST)
    assert row is not None
    assert row[0] == "New"


async def test_a_page_over_1000_rows_is_refused(any_store: Store) -> None:
    with pytest.raises(StoreError, match="at most 1000 rows"):
        await any_store.upsert("guests", [guest_row() for _ in range(1001)])


def test_the_document_sweep_covers_inactive_guests_too(database_url: str) -> None:
    """Deleted and merged-away guests stay mirrored, so their identity documents are swept too."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        seed_tenancy(conn)
        active, merged = guest_row(), guest_row(is_active=False)
        conn.execute("select public.upsert_guests(%s::jsonb)", (json.dumps([active, merged]),))
        (page,) = conn.execute("select public.guest_ids_page(%s)", (CHAIN_ID,)).fetchone()  # type: ignore[misc]
    assert sorted(page) == sorted([active["mews_id"], merged["mews_id"]])
