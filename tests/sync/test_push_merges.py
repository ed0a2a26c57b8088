"""Merges decided by staff, carried out in Mews by the push (``accounts/merge``).

With respx: the exact request shape, a refusal that costs only its own merge, a 409 re-read and
resubmitted. Against the simulator over real HTTP and a real database: decide same person →
push → merged in Mews → the mirror shows ``MergeTargetId`` and the suggestion is gone; a merge
that cannot be done is recorded as failed, never as success."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import psycopg
import pytest
import respx

from shared.db.store import Store
from shared.mews.client import MewsClient
from shared.quality import duplicates
from shared.simulator.running import Simulator
from shared.sync.engine import SyncEngine
from shared.sync.push import TARGET_MERGED, MergeRequest, merge_chain, push_changes
from shared.sync.runs import Run, recorded_run
from tests.support.respx_mews import TOKENS, bodies
from tests.sync.test_push import active_ids, mews_edit, staff_of

pytestmark = pytest.mark.anyio

API = "https://mews.test/api/connector/v1/"
CHAIN = "4f8d3b0e-2222-4000-8000-000000000002"


def guest_id(n: int) -> str:
    return f"4f8d3b0e-1111-4000-8000-{n:012d}"


def customer(n: int, **fields: Any) -> dict[str, Any]:
    return {
        "Id": guest_id(n),
        "ChainId": CHAIN,
        "Number": str(100000 + n),
        "LastName": "Sampleton",
        "UpdatedUtc": "2026-03-01T10:00:00Z",
        "IsActive": True,
        **fields,
    }


def request(n: int, target: int) -> MergeRequest:
    a, b = sorted((guest_id(n), guest_id(target)))
    return MergeRequest(CHAIN, a, b, guest_id(n), guest_id(target), "2026-03-01T10:00:00+00:00")


def customers(*records: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json={"Customers": list(records), "Cursor": None})


# -- the exact request (respx) ----------------------------------------------------------------


async def test_merges_go_out_in_the_documented_shape_ten_a_request(
    mews_client: MewsClient,
) -> None:
    """Twelve merges into survivor 0: two requests (at most 10 AccountMergeParameters), each
    item exactly {SourceAccountIds, TargetAccountId, AccountType}; nothing else but the tokens."""
    merges = [request(n, 100 + n) for n in range(1, 13)]
    everyone = [customer(n) for n in range(1, 13)] + [customer(100 + n) for n in range(1, 13)]
    with respx.mock(assert_all_called=True) as mock:
        mock.post(API + "customers/getAll").mock(return_value=customers(*everyone))
        merged = mock.post(API + "accounts/merge").mock(return_value=httpx.Response(200, json={}))
        outcomes = await merge_chain(mews_client, CHAIN, merges)
    assert bodies(merged) == [
        {
            **TOKENS,
            "AccountMergeParameters": [
                {
                    "SourceAccountIds": [guest_id(n)],
                    "TargetAccountId": guest_id(100 + n),
                    "AccountType": "Customer",
                }
                for n in numbers
            ],
        }
        for numbers in (range(1, 11), range(11, 13))
    ]
    assert {m: o.status for m, o in outcomes.items()} == dict.fromkeys(merges, "merged")


async def test_a_refused_merge_costs_only_itself_and_a_409_is_read_again(
    mews_client: MewsClient,
) -> None:
    good, bad = request(1, 2), request(3, 4)
    refused = httpx.Response(400, json={"Message": "Invalid SourceAccountIds.", "RequestId": "r"})
    conflict = httpx.Response(409, json={"Message": "Changed.", "RequestId": "r409"})
    with respx.mock(assert_all_called=True) as mock:
        everyone = customers(*(customer(n) for n in (1, 2, 3, 4)))
        reads = mock.post(API + "customers/getAll").mock(side_effect=[everyone, everyone])
        # a 409: both read again and resubmitted; then a 400 for the pair of them: split, and
        # only the bad one is refused
        merged = mock.post(API + "accounts/merge").mock(
            side_effect=[conflict, refused, httpx.Response(200, json={}), refused]
        )
        outcomes = await merge_chain(mews_client, CHAIN, [good, bad])
    assert len(reads.calls) == 2
    sources = [
        [p["SourceAccountIds"][0] for p in b["AccountMergeParameters"]] for b in bodies(merged)
    ]
    assert sources == [[good.source, bad.source]] * 2 + [[good.source], [bad.source]]
    assert (outcomes[good].status, outcomes[good].attempts) == ("merged", 2)
    assert outcomes[bad].status == "failed"
    assert outcomes[bad].error == "Mews refused the merge: Invalid SourceAccountIds."


async def test_a_profile_gone_in_mews_is_not_merged(mews_client: MewsClient) -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.post(API + "customers/getAll").mock(
            return_value=customers(customer(1), customer(2, IsActive=False))
        )
        merged = mock.post(API + "accounts/merge")
        outcomes = await merge_chain(mews_client, CHAIN, [request(1, 2)])
    assert merged.calls.call_count == 0
    assert [(o.status, o.error) for o in outcomes.values()] == [("failed", TARGET_MERGED)]


# -- end to end: the simulator over real HTTP, a real database ------------------------------------


def staff_call(url: str, user: str, sql: str, params: tuple[Any, ...]) -> Any:
    """One committed request of a staff member, as PostgREST runs it."""
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute("set local role authenticated")
        conn.execute(
            "select set_config('request.jwt.claims', %s, true)",
            (json.dumps({"role": "authenticated", "sub": user}),),
        )
        row = conn.execute(sql, params).fetchone()
    return row[0] if row else None


def rows(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def suggest(url: str, chain_id: str, a: str, b: str) -> None:
    """What the duplicates pass would write for the pair."""
    low, high = sorted((a, b))
    evidence = [{"field": "email", "level": "exact", "weight": 8.0, "detail": ""}]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "insert into public.guest_duplicates (chain_id, guest_a, guest_b, evidence,"
            " probability, match_weight) values (%s, %s, %s, %s, 0.99, 30)",
            (chain_id, low, high, json.dumps(evidence)),
        )


async def push(store: Store, engine: SyncEngine) -> Run:
    async with recorded_run(store, "push_changes") as run:
        await push_changes(store, engine, run)
    return run


async def test_a_pair_decided_the_same_person_is_merged_in_mews_and_the_mirror_follows(
    engine: SyncEngine, simulator: Simulator, store: Store, database_url: str
) -> None:
    user = await staff_of(engine, simulator, database_url)
    source, target = active_ids(simulator, 2)
    chain_id, enterprise = simulator.data.chain_id, simulator.data.enterprises[0]["Id"]
    suggest(database_url, chain_id, source, target)
    open_pairs = "select count(*) from public.duplicate_suggestions where enterprise_id = %s"
    assert staff_call(database_url, user, open_pairs, (enterprise,)) == 1
    decided = staff_call(
        database_url,
        user,
        "select public.duplicate_decide(%s, %s, %s, 'same', %s)",
        (chain_id, source, target, target),
    )
    assert decided["merge_status"] == "pending"
    assert simulator.data.customers[source]["IsActive"]  # nothing happens before the push
    await asyncio.to_thread(simulator.reset_stats)
    run = await push(store, engine)
    assert (run.status, run.counts["merged"]) == ("succeeded", 1)
    assert (await asyncio.to_thread(simulator.stats))["operations"]["accounts/merge"] == 1
    merged_away = simulator.data.customers[source]
    assert (merged_away["IsActive"], merged_away["MergeTargetId"]) == (False, target)
    assert simulator.data.customers[target]["IsActive"]
    # the mirror follows Mews: the merged-away profile carries MergeTargetId and is inactive
    assert rows(
        database_url,
        "select is_active, merge_target_id::text from public.guests where mews_id = %s",
        (source,),
    ) == [(False, target)]
    assert rows(
        database_url, "select merge_status, merge_error from public.duplicate_decisions"
    ) == [("merged", None)]
    assert rows(
        database_url,
        "select event, actor::text, run_id::text from public.duplicate_decision_log order by id",
    ) == [("same", user, None), ("merged", None, str(run.id))]
    # the suggestion is gone, and the next pass does not bring it back
    assert staff_call(database_url, user, open_pairs, (enterprise,)) == 0
    await duplicates.rebuild(store, chain_id)
    assert rows(
        database_url,
        "select count(*) from public.guest_duplicates where guest_a = %s or guest_b = %s",
        (source, source),
    ) == [(0,)]
    # a second push has nothing left to merge
    await asyncio.to_thread(simulator.reset_stats)
    await push(store, engine)
    assert "accounts/merge" not in (await asyncio.to_thread(simulator.stats))["operations"]


async def test_a_merge_that_cannot_be_done_is_recorded_as_failed_not_as_success(
    engine: SyncEngine, simulator: Simulator, store: Store, database_url: str
) -> None:
    user = await staff_of(engine, simulator, database_url)
    source, target, other, survivor = active_ids(simulator, 4)
    chain_id = simulator.data.chain_id
    decide = "select public.duplicate_decide(%s, %s, %s, 'same', %s)"
    staff_call(database_url, user, decide, (chain_id, source, target, target))
    staff_call(database_url, user, decide, (chain_id, other, survivor, survivor))
    mews_edit(simulator, target, IsActive=False)  # deleted in Mews meanwhile
    await asyncio.to_thread(
        simulator.set_faults,
        targeted=[{"operation": "accounts/merge", "matching": other, "status": 403, "times": 5}],
    )
    run = await push(store, engine)
    assert run.counts["merges_failed"] == 2
    assert "merged" not in run.counts
    assert simulator.data.customers[source]["IsActive"]
    assert simulator.data.customers[other]["IsActive"]
    failed = dict(
        rows(
            database_url,
            "select (case when survivor = guest_a then guest_b else guest_a end)::text,"
            " merge_status || ': ' || merge_error from public.duplicate_decisions",
        )
    )
    assert failed == {
        source: f"failed: {TARGET_MERGED}",
        other: "failed: Mews refused the merge: Injected fault 403.",
    }
    # staff see it where they see refused pushes
    assert sorted(
        rows(
            database_url,
            "select guest_mews_id::text, field, resolution from public.conflict_log",
        )
    ) == sorted([(source, "merge", "refused_by_mews"), (other, "merge", "refused_by_mews")])
    assert rows(
        database_url, "select is_active from public.guests where mews_id = %s", (target,)
    ) == [(False,)]


async def test_nothing_is_merged_without_a_survivor_chosen_by_a_person(
    engine: SyncEngine, simulator: Simulator, store: Store, database_url: str
) -> None:
    """A pair decided the same person without a survivor, or suggested at p 0.99 and not decided,
    is never merged: the push sends no accounts/merge."""
    user = await staff_of(engine, simulator, database_url)
    a, b, c, d = active_ids(simulator, 4)
    chain_id = simulator.data.chain_id
    suggest(database_url, chain_id, c, d)
    staff_call(
        database_url,
        user,
        "select public.duplicate_decide(%s, %s, %s, 'same')",
        (chain_id, a, b),
    )
    await asyncio.to_thread(simulator.reset_stats)
    run = await push(store, engine)
    assert run.status == "succeeded"
    assert "accounts/merge" not in (await asyncio.to_thread(simulator.stats))["operations"]
    assert all(simulator.data.customers[i]["IsActive"] for i in (a, b, c, d))
