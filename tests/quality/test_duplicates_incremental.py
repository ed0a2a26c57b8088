"""Duplicate suggestions in proportion to what changed: a second full pass over unchanged guests
writes nothing; a changed or new guest is matched against the rest through its blocking keys
(looked up by index) and the chain's stored model, with the pairs a full pass would find; nothing
queued, nothing read or written; a guest merged away takes its keys and pairs with it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from shared.db.store import Store
from shared.quality import duplicates
from shared.quality.facts import refresh_chain
from shared.quality.live import rescore_changed
from tests.quality.conftest import insert_profile
from tests.quality.test_duplicates_weighed import people
from tests.support.rows import CHAIN_ID
from tests.support.tenancy import seed_tenancy


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        seed_tenancy(connection)
        yield connection


def stored(conn: psycopg.Connection) -> dict[frozenset[str], tuple[float, float, Any]]:
    rows = conn.execute(
        "select guest_a, guest_b, probability, match_weight, evidence, found_at"
        " from public.guest_duplicates where chain_id = %s",
        (CHAIN_ID,),
    ).fetchall()
    return {frozenset((str(r[0]), str(r[1]))): (r[2], r[3], r[4], r[5]) for r in rows}


def pairs(conn: psycopg.Connection) -> dict[frozenset[str], tuple[float, Any]]:
    """Each pair's probability and levels (the weights of an update use the chain's size and
    name counts as of the last full pass: a guest more moves them by a hundredth)."""
    return {
        k: (round(v[0], 2), sorted((e["field"], e["level"]) for e in v[2]))
        for k, v in stored(conn).items()
    }


def whitfields(conn: psycopg.Connection) -> tuple[str, str]:
    william = insert_profile(
        conn,
        {
            "first_name": "William",
            "last_name": "Whitfield",
            "birth_date": "1980-03-07",
            "email": "w.whitfield@mail.example",
            "phone": "+447400123456",
        },
    )
    bill = insert_profile(
        conn,
        {
            "first_name": "Bill",
            "last_name": "Whitfield",
            "birth_date": "1980-07-03",
            "email": "bill@work.example",
            "phone": "+447400123456",
        },
    )
    return william, bill


def queued(conn: psycopg.Connection) -> int:
    (count,) = conn.execute(  # type: ignore[misc]
        "select count(*) from app.quality_duplicate_queue where chain_id = %s", (CHAIN_ID,)
    ).fetchone()
    return int(count)


@pytest.mark.anyio
async def test_a_second_pass_over_unchanged_guests_writes_nothing(
    conn: psycopg.Connection, store: Store
) -> None:
    people(conn, 200)
    william, bill = whitfields(conn)
    conn.execute("update public.guests set synced_at = now()")
    await refresh_chain(store, CHAIN_ID)
    first = stored(conn)
    assert frozenset((william, bill)) in first
    (keys,) = conn.execute("select count(*) from app.duplicate_guests").fetchone()  # type: ignore[misc]
    assert keys == 202
    again = await duplicates.rebuild(store, CHAIN_ID)
    assert (again.pairs, again.pruned, again.keys_written, again.estimated) == (0, 0, 0, False)
    assert again.found == len(first)
    assert stored(conn) == first  # not even found_at moved
    # nothing queued: an update reads no guest and writes nothing
    assert queued(conn) == 0
    idle = await duplicates.update(store, CHAIN_ID)
    assert (idle.guests, idle.compared, idle.pairs, idle.pruned) == (0, 0, 0, 0)
    refresh = await refresh_chain(store, CHAIN_ID)
    assert (refresh.facts, refresh.pairs) == (0, 0)
    assert stored(conn) == first
    # a guest gone inactive behind the queue's back: the next full pass forgets it
    conn.execute("update public.guests set is_active = false where mews_id = %s", (bill,))
    gone = await duplicates.rebuild(store, CHAIN_ID)
    assert gone.pruned >= 1
    assert not any(bill in pair for pair in stored(conn))
    assert conn.execute(
        "select count(*) from app.duplicate_guests where guest_mews_id = %s", (bill,)
    ).fetchone() == (0,)
    assert conn.execute(
        "select count(*) from app.duplicate_keys where guest_mews_id = %s", (bill,)
    ).fetchone() == (0,)


@pytest.mark.anyio
async def test_a_pass_over_what_the_last_pass_left_weighs_nothing(
    conn: psycopg.Connection, store: Store
) -> None:
    """The last pass's fingerprint read again (same guests' inputs, pairs held back, stored
    pairs): nothing prepared or weighed. Anything else, even a pair removed behind its back or
    a guest changed without being queued, and the pass weighs everyone again."""
    people(conn, 100)
    william, bill = whitfields(conn)
    first = await duplicates.rebuild(store, CHAIN_ID)
    assert not first.unchanged
    kept = stored(conn)
    again = await duplicates.rebuild(store, CHAIN_ID)
    assert again.unchanged
    assert (again.found, again.candidates) == (first.found, first.candidates)
    assert (again.pairs, again.pruned, again.keys_written) == (0, 0, 0)
    conn.execute(
        "delete from public.guest_duplicates where guest_a = %s or guest_b = %s", (bill, bill)
    )
    restored = await duplicates.rebuild(store, CHAIN_ID)
    assert not restored.unchanged
    assert restored.pairs >= 1
    assert stored(conn).keys() == kept.keys()
    assert (await duplicates.rebuild(store, CHAIN_ID)).unchanged
    conn.execute(
        "update public.guests set first_name = 'Wilhelmina' where mews_id = %s", (william,)
    )
    changed = await duplicates.rebuild(store, CHAIN_ID)
    assert not changed.unchanged
    assert changed.keys_written == 1


@pytest.mark.anyio
async def test_a_pair_decided_different_is_not_written_again_by_either_pass(
    conn: psycopg.Connection, store: Store
) -> None:
    """The triggers on guest_duplicates drop a decided pair after any write; a pass that keeps
    its pairs must leave it out, or it finds it new (and writes it) every time."""
    people(conn, 50)
    william, bill = whitfields(conn)
    await refresh_chain(store, CHAIN_ID)
    assert frozenset((william, bill)) in stored(conn)
    conn.execute(
        "select public.duplicate_decide(%s, %s, %s, 'different')", (CHAIN_ID, william, bill)
    )
    assert frozenset((william, bill)) not in stored(conn)
    again = await duplicates.rebuild(store, CHAIN_ID)
    assert (again.pairs, again.pruned) == (0, 0)
    # a change the matcher does not read queues the guest; its update writes nothing either
    conn.execute("update public.guests set notes = 'vip' where mews_id = %s", (bill,))
    conn.execute("update public.guests set synced_at = now() where mews_id = %s", (bill,))
    await refresh_chain(store, CHAIN_ID)
    conn.execute(
        "insert into app.quality_duplicate_queue (chain_id, guest_mews_id) values (%s, %s)"
        " on conflict do nothing",
        (CHAIN_ID, bill),
    )
    around = await duplicates.update(store, CHAIN_ID)
    assert around.guests == 1
    assert around.pairs == 0
    assert frozenset((william, bill)) not in stored(conn)


@pytest.mark.anyio
async def test_a_changed_or_new_guest_gets_the_pairs_a_full_pass_finds(
    conn: psycopg.Connection, store: Store
) -> None:
    ids = people(conn, 200)
    william, bill = whitfields(conn)
    conn.execute("update public.guests set synced_at = now()")
    await refresh_chain(store, CHAIN_ID)
    # a new profile of William at the desk, and Bill's profile edited into someone else's
    will = insert_profile(
        conn,
        {
            "first_name": "Will",
            "last_name": "Whitfield",
            "birth_date": "1980-03-07",
            "email": "w.whitfield@mail.example",
        },
    )
    conn.execute(
        "update public.guests set first_name = 'Zenobia', last_name = 'Quist',"
        " birth_date = '1999-09-09', phone = null, email = 'zq@example.org', synced_at = now()"
        " where mews_id = %s",
        (bill,),
    )
    conn.execute("update public.guests set synced_at = now() where mews_id = %s", (will,))
    refresh = await rescore_changed(store, CHAIN_ID)  # the real-time worker's call
    assert refresh.facts == 2
    assert queued(conn) == 0
    incremental = pairs(conn)
    assert frozenset((william, will)) in incremental
    assert not any(bill in pair for pair in incremental)
    # what a full pass from nothing finds
    conn.execute("delete from public.guest_duplicates")
    conn.execute("delete from app.duplicate_models")
    await duplicates.rebuild(store, CHAIN_ID)
    assert pairs(conn) == incremental
    # merged away: inactive, its keys and pairs go with the next update
    conn.execute(
        "update public.guests set is_active = false, synced_at = now() where mews_id = %s", (will,)
    )
    await rescore_changed(store, CHAIN_ID)
    assert not any(will in pair for pair in pairs(conn))
    (left,) = conn.execute(  # type: ignore[misc]
        "select count(*) from app.duplicate_guests where guest_mews_id = %s", (will,)
    ).fetchone()
    assert left == 0
    assert ids  # the crowd stayed


@pytest.mark.anyio
async def test_a_value_on_many_profiles_pairs_no_one_when_a_guest_changes(
    conn: psycopg.Connection, store: Store
) -> None:
    ids = people(conn, 60)
    conn.execute(
        "update public.guests set email = 'bookings@agency.example', phone = null,"
        " synced_at = now() where mews_id = any (%s::uuid[])",
        (ids[:40],),
    )
    conn.execute("update public.guests set synced_at = now()")
    await refresh_chain(store, CHAIN_ID)
    conn.execute(
        "update public.guests set email = 'bookings@agency.example', synced_at = now()"
        " where mews_id = %s",
        (ids[50],),
    )
    refresh = await rescore_changed(store, CHAIN_ID)
    assert refresh.facts == 1
    assert refresh.uninformative >= 1  # the agency's address: counted, not paired on
    assert conn.execute("select count(*) from public.guest_duplicates").fetchone() == (0,)
    # the report says so: the model keeps what the last full pass did not pair on
    (model,) = conn.execute(  # type: ignore[misc]
        "select model from app.duplicate_models where chain_id = %s", (CHAIN_ID,)
    ).fetchone()
    assert model["skipped"]["email"] == 1


@pytest.mark.anyio
async def test_bad_input_neither_crashes_nor_floods(conn: psycopg.Connection, store: Store) -> None:
    """Names in any script, empty and one-letter names, placeholder e-mails and phones."""
    people(conn, 40)
    odd = [
        {"first_name": "王", "last_name": "小明", "birth_date": "1990-01-01"},
        {"first_name": "王", "last_name": "小明", "birth_date": "1990-01-01"},
        {"first_name": "Ольга", "last_name": "Иванова", "email": "olga@example.ru"},
        {"first_name": "Olga", "last_name": "Ivanova", "email": "olga@example.ru"},
        {"first_name": "Νίκος", "last_name": "Παπαδόπουλος", "phone": "+302101234567"},
        {"first_name": "", "last_name": "", "phone": "000000"},
        {"first_name": "J", "last_name": "K", "birth_date": "1990-01-01"},
    ]
    # 30 profiles with a placeholder e-mail and phone, and nothing else in common
    odd += [
        {
            "first_name": f"Guest{i}",
            "last_name": f"Nobody{i}",
            "email": "noemail@hotel.example",
            "phone": "000000",
        }
        for i in range(30)
    ]
    ids = [insert_profile(conn, profile) for profile in odd]
    conn.execute("update public.guests set synced_at = now()")
    await refresh_chain(store, CHAIN_ID)
    found = set(pairs(conn))
    assert frozenset(ids[0:2]) in found  # the same CJK name and birth date
    assert frozenset(ids[2:4]) in found  # Cyrillic and its transliteration, one e-mail
    assert not any(set(pair) & set(ids[7:]) for pair in found)  # placeholders pair no one
    (phones,) = conn.execute(  # type: ignore[misc]
        "select count(*) from public.guest_facts where phone_e164 is not null"
        " and guest_mews_id = any (%s::uuid[])",
        (ids[5:],),
    ).fetchone()
    assert phones == 0  # "000000" is no phone at all


def index_rows(conn: psycopg.Connection) -> list[tuple[str, int]]:
    """The key index, (guest, key) sorted; each guest's keys as recorded with its digest."""
    rows = conn.execute(
        "select k.guest_mews_id::text, k.key from app.duplicate_keys k"
        " join public.guests g on g.mews_id = k.guest_mews_id where g.chain_id = %s",
        (CHAIN_ID,),
    ).fetchall()
    recorded = conn.execute(
        "select guest_mews_id::text, k from app.duplicate_guests d, unnest(d.keys) k"
        " where d.chain_id = %s",
        (CHAIN_ID,),
    ).fetchall()
    assert sorted(rows) == sorted(recorded)
    return sorted(rows)


@pytest.mark.anyio
async def test_many_guests_keys_are_indexed_a_key_range_a_call_as_one_call_each_would(
    conn: psycopg.Connection, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bulk way (a first pass over many guests: keys recorded first, then indexed by ranges
    of key values, a range split over calls when it holds more than a call takes) leaves the
    index the batch way leaves, and an update around a changed guest finds its pair by it."""
    people(conn, 200)
    william, bill = whitfields(conn)
    conn.execute("update public.guests set synced_at = now()")
    await refresh_chain(store, CHAIN_ID)  # few guests: indexed with their batch
    one_call_each = index_rows(conn)
    assert len(one_call_each) > 900
    conn.execute("delete from app.duplicate_keys")
    conn.execute("delete from app.duplicate_guests")
    conn.execute("delete from app.duplicate_models")
    monkeypatch.setattr(duplicates, "KEYS_BULK", 1)
    monkeypatch.setattr(duplicates, "INDEX_CALL_KEYS", 40)  # 36 ranges, most split in two calls
    calls: list[str] = []
    real_call = store.call

    async def counted(fn: str, **args: Any) -> Any:
        calls.append(fn)
        return await real_call(fn, **args)

    monkeypatch.setattr(store, "call", counted)
    bulk = await duplicates.rebuild(store, CHAIN_ID)
    assert bulk.keys_written == 202
    assert index_rows(conn) == one_call_each
    assert calls.count("quality_duplicates_keys_index") > 36
    assert frozenset((william, bill)) in stored(conn)
    # Bill re-typed at the desk: the update finds William through the index the bulk way made
    conn.execute(
        "update public.guests set first_name = 'Billy', synced_at = now() where mews_id = %s",
        (bill,),
    )
    await rescore_changed(store, CHAIN_ID)
    assert frozenset((william, bill)) in stored(conn)
    assert index_rows(conn) != one_call_each  # Billy's keys, not Bill's


@pytest.mark.anyio
async def test_keys_indexed_as_text_must_pair_up(conn: psycopg.Connection, store: Store) -> None:
    from shared.db.store import StoreError

    with pytest.raises(StoreError) as refused:
        await store.call(
            "quality_duplicates_keys_index",
            p_keys="1,2",
            p_guests="6f1a3b5e-0000-4000-8000-000000000001",
        )
    assert refused.value.code == "22023"
    assert "2 keys but p_guests 1" in str(refused.value)
    assert await store.call("quality_duplicates_keys_index", p_keys="", p_guests="") == 0


@pytest.mark.anyio
async def test_keys_recorded_as_text_must_describe_each_guest(
    conn: psycopg.Connection, store: Store
) -> None:
    from shared.db.store import StoreError

    one = "6f1a3b5e-0000-4000-8000-000000000001"

    async def put(ids: str, digests: str, keys: str) -> Any:
        return await store.call(
            "quality_duplicates_keys_put",
            p_chain_id=CHAIN_ID,
            p_ids=ids,
            p_digests=digests,
            p_keys=keys,
            p_index=True,
        )

    for digests, keys, says in (
        ("7", "1 2", "end each of the 1 guests with ';'"),
        ("7", "1;2;", "1 guests"),
        ("7,8", ";", "one entry per guest"),
    ):
        with pytest.raises(StoreError) as refused:
            await put(one, digests, keys)
        assert refused.value.code == "22023"
        assert says in str(refused.value)
    assert await put("", "", "") == 0
    # a guest with no keys is an empty entry: recorded, nothing indexed
    assert await put(one, "7", ";") == 1
    assert conn.execute(
        "select digest, keys from app.duplicate_guests where guest_mews_id = %s", (one,)
    ).fetchone() == (7, [])


@pytest.mark.anyio
async def test_two_chains_share_the_key_index_and_no_key(
    conn: psycopg.Connection, store: Store
) -> None:
    """The same people in two chains: the one index of keys holds each chain's keys under its
    own digests, so no key pairs (or counts) a guest of one chain with a guest of the other,
    and an update in one chain finds its own guests only."""
    from tests.support.rows import OTHER_CHAIN_ID

    people(conn, 100)
    people(conn, 100, chain_id=OTHER_CHAIN_ID)
    william, bill = whitfields(conn)
    for profile in ("William", "Bill"):
        insert_profile(
            conn,
            {
                "first_name": profile,
                "last_name": "Whitfield",
                "birth_date": "1980-03-07" if profile == "William" else "1980-07-03",
                "email": "w.whitfield@mail.example"
                if profile == "William"
                else "bill@work.example",
                "phone": "+447400123456",
            },
            chain_id=OTHER_CHAIN_ID,
        )
    for chain in (CHAIN_ID, OTHER_CHAIN_ID):
        await refresh_chain(store, chain)
    shared_keys = conn.execute(
        "select count(*) from (select k.key from app.duplicate_keys k"
        " join public.guests g on g.mews_id = k.guest_mews_id"
        " group by k.key having count(distinct g.chain_id) > 1) x"
    ).fetchone()
    assert shared_keys == (0,)
    assert conn.execute("select count(*) from app.duplicate_keys").fetchone()[0] > 10  # type: ignore[index]
    assert frozenset((william, bill)) in stored(conn)
    conn.execute(
        "update public.guests set first_name = 'Billy', synced_at = now() where mews_id = %s",
        (bill,),
    )
    await rescore_changed(store, CHAIN_ID)
    assert set(stored(conn)) == {frozenset((william, bill))}
    (phone,) = [e for e in stored(conn)[frozenset((william, bill))][2] if e["field"] == "phone"]
    assert phone["level"] == "exact"  # held by two profiles of this chain, not four


@pytest.mark.anyio
async def test_keys_made_another_way_wait_for_a_full_pass(
    conn: psycopg.Connection, store: Store
) -> None:
    """A model stored by a version that made its blocking keys another way: the index holds keys
    this code does not make, so an update would find no one; it leaves the queue to a full pass."""
    people(conn, 50)
    william, bill = whitfields(conn)
    conn.execute("update public.guests set synced_at = now()")
    await refresh_chain(store, CHAIN_ID)
    conn.execute("update app.duplicate_models set model = model - 'keys_version'")
    conn.execute(
        "update public.guests set first_name = 'Billy', synced_at = now() where mews_id = %s",
        (bill,),
    )
    conn.execute(
        "insert into app.quality_duplicate_queue (chain_id, guest_mews_id) values (%s, %s)"
        " on conflict do nothing",
        (CHAIN_ID, bill),
    )
    waiting = await duplicates.update(store, CHAIN_ID)
    assert waiting.no_model
    assert waiting.compared == 0
    assert queued(conn) == 1
    await refresh_chain(store, CHAIN_ID)  # sees the update wait: a full pass
    assert queued(conn) == 0
    assert conn.execute(
        "select model->>'keys_version' from app.duplicate_models where chain_id = %s", (CHAIN_ID,)
    ).fetchone() == (duplicates.KEYS_VERSION,)
    assert frozenset((william, bill)) in stored(conn)


@pytest.mark.anyio
async def test_a_pass_stopped_while_indexing_leaves_updates_waiting_and_the_next_pass_whole(
    conn: psycopg.Connection, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bulk way records every guest's digest before indexing its keys: a pass that stops
    in between must not leave digests that say "written" over an index that is not. Updates
    wait for a whole pass; the next pass writes every guest's keys again."""
    people(conn, 200)
    william, bill = whitfields(conn)
    conn.execute("update public.guests set synced_at = now()")
    await refresh_chain(store, CHAIN_ID)
    one_call_each = index_rows(conn)
    # the matcher's keys made another way: every guest's keys rewritten the bulk way
    conn.execute("update app.duplicate_guests set digest = digest + 1")
    monkeypatch.setattr(duplicates, "KEYS_BULK", 1)
    monkeypatch.setattr(duplicates, "INDEX_CALL_KEYS", 40)
    real_call = store.call
    indexed = 0

    async def stops_while_indexing(fn: str, **args: Any) -> Any:
        nonlocal indexed
        if fn == "quality_duplicates_keys_index":
            indexed += 1
            if indexed > 3:
                raise RuntimeError("the job was stopped")
        return await real_call(fn, **args)

    monkeypatch.setattr(store, "call", stops_while_indexing)
    with pytest.raises(RuntimeError, match="stopped"):
        await duplicates.rebuild(store, CHAIN_ID)
    monkeypatch.setattr(store, "call", real_call)
    conn.execute(
        "insert into app.quality_duplicate_queue (chain_id, guest_mews_id) values (%s, %s)"
        " on conflict do nothing",
        (CHAIN_ID, bill),
    )
    waiting = await duplicates.update(store, CHAIN_ID)
    assert waiting.no_model  # the index is not whole: no lookup in it
    assert queued(conn) == 1
    again = await duplicates.rebuild(store, CHAIN_ID)
    assert again.keys_written == 202  # every guest, though the digests said written
    assert index_rows(conn) == one_call_each
    assert frozenset((william, bill)) in stored(conn)
    done = await duplicates.update(store, CHAIN_ID)
    assert not done.no_model
    assert queued(conn) == 0
