"""Pushing staff edits back to Mews: a field-level three-way merge (shared/sync/merge.py).

Pending edits go out in batches. For each batch: re-read its customers from Mews (there is no
conditional write; one ``customers/getAll`` by ``CustomerIds`` per chain and 1000 guests) and
merge field by field against the values the staff member saw (``local_base``): a field Mews did
not change is pushed; a field both sides changed goes to the later write and is logged with
both values; a field Mews already holds is left alone. Values go through ``customers/update``,
clears through ``accounts/update`` (``customers/update`` cannot blank a field), both with the
guest's ``ChainId`` (required with a portfolio token), several guests at a time inside the
token's shared budget. A 409 (data changed meanwhile) means re-read that guest, re-merge and
resubmit, a few times, then the edit stays pending with the error. A refusal (400/403, e.g. a
duplicate e-mail) is recorded on the row for staff, never retried. What Mews then holds is read
back in one request per batch and mirrored before the outcomes are recorded; the webhook that
follows (our echo) then finds nothing new.

Merges decided by staff (a pair marked the same person with a survivor,
``public.duplicate_decide``) go out after the edits, in the same run, lease and token budget:
both profiles are read, ``accounts/merge`` folds the other into the survivor (up to 10 merges a
request; one Mews refuses costs only itself), a 409 is re-read and resubmitted like an edit's,
and both profiles are read back and mirrored (the merged-away one then carries
``MergeTargetId`` and is inactive). Each outcome is recorded on the decision and in its log
(``duplicate_merge_record``); a failure (refused, or a profile gone or merged elsewhere) is
also a conflict-log row for staff. Nothing is merged without a person's decision.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from shared.db.store import Store
from shared.logs import get_logger
from shared.mews.client import MewsClient, Page
from shared.mews.errors import MewsBadRequestError, MewsBusinessRuleError, MewsConflictError
from shared.mews.models import Customer
from shared.sync.bisect import isolate
from shared.sync.engine import SyncEngine
from shared.sync.entities import pushed
from shared.sync.merge import FieldConflict, MergeResult, merge
from shared.sync.runs import Run

log = get_logger(__name__)

# local column (= Customer attribute) → (customers/update name, accounts/update name); the
# column grant to staff and the array of the trigger recording their edits are the same list
# (tests/sync/test_editable_columns.py holds the three together)
FIELDS: dict[str, tuple[str, str]] = {
    "first_name": ("FirstName", "FirstName"),
    "last_name": ("LastName", "LastName"),
    "email": ("Email", "Email"),
    "phone": ("Phone", "Telephone"),
    "birth_date": ("BirthDate", "BirthDate"),
    "nationality_code": ("NationalityCode", "NationalityCode"),
    "preferred_language_code": ("PreferredLanguageCode", "PreferredLanguageCode"),
    "title": ("Title", "Title"),
    "sex": ("Sex", "Sex"),
    "notes": ("Notes", "Notes"),
    "loyalty_code": ("LoyaltyCode", "LoyaltyCode"),
    "occupation": ("Occupation", "Occupation"),
    "car_registration_number": ("CarRegistrationNumber", "CarRegistrationNumber"),
    "dietary_requirements": ("DietaryRequirements", "DietaryRequirements"),
}

# 409 (docs/MEWS.md#errors): re-read, re-merge and resubmit at most this many times in all
MAX_ATTEMPTS = 3

MERGED_AWAY = "the profile was deleted or merged in Mews; edit the surviving profile"
GONE = "the customer no longer exists in Mews"
DETAILS = {
    "mews_won": "Mews changed this field too, after the staff edit",
    "local_won": "Mews changed this field too, before the staff edit",
}


def mews_values(customer: Customer) -> dict[str, Any]:
    """The editable fields of a customer as local column values (dates as ISO text)."""
    values: dict[str, Any] = {}
    for column in FIELDS:
        value = getattr(customer, column)
        values[column] = value.isoformat() if hasattr(value, "isoformat") else value
    return values


@dataclass(frozen=True)
class PushPlan:
    """The requests for one merge: ``customers/update`` values and ``accounts/update`` clears."""

    sets: dict[str, Any]
    clears: dict[str, Any]
    set_columns: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        return not self.sets and not self.clears

    @property
    def fields(self) -> int:
        return len(self.sets) + len(self.clears)


def plan_requests(push: dict[str, Any]) -> PushPlan:
    """Values to set through ``customers/update``; blanks to clear through ``accounts/update``."""
    sets: dict[str, Any] = {}
    clears: dict[str, Any] = {}
    set_columns: set[str] = set()
    for column, value in sorted(push.items()):
        update_name, account_name = FIELDS[column]
        if value in (None, ""):
            clears[account_name] = {"Value": None}
        else:
            sets[update_name] = value
            set_columns.add(column)
    return PushPlan(sets, clears, frozenset(set_columns))


def conflict_rows(
    conflicts: list[FieldConflict], mews_updated_utc: datetime
) -> list[dict[str, Any]]:
    """``conflict_log`` rows (through ``push_record``) for the fields both sides changed."""
    return [
        {
            "field": c.field,
            "local_value": c.local_value,
            "mews_value": c.mews_value,
            "resolution": c.resolution,
            "detail": DETAILS[c.resolution],
            "mews_updated_utc": mews_updated_utc.isoformat(),
        }
        for c in conflicts
    ]


@dataclass
class PushOutcome:
    """How one guest's push ended: ``status`` is what ``push_record`` stores."""

    status: str  # pushed | mews_won | refused | pending
    error: str | None = None
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    fields: int = 0
    attempts: int = 0
    wrote: bool = False

    @property
    def to_mirror(self) -> bool:
        """Mews now holds something the mirror should show: what was written, what the merge
        left to Mews, a profile merged away there (not a refused or still pending edit)."""
        return self.wrote or self.status in ("pushed", "mews_won") or self.error == MERGED_AWAY


async def read_customers(
    client: MewsClient, chain_id: str, mews_ids: list[str]
) -> tuple[dict[str, Customer], list[Page[Customer]]]:
    """The customers of one chain by id, ``CustomerIds`` ≤ 1000 a request (``ChainIds`` is
    required with a portfolio token); what Mews no longer has is absent."""
    found: dict[str, Customer] = {}
    pages: list[Page[Customer]] = []
    for batch in _batches(sorted(set(mews_ids)), 1000):
        asked = set(batch)
        async for page in client.customers(chain_ids=[chain_id], customer_ids=batch):
            pages.append(page)
            found.update((c.id, c) for c in page.items if c.id in asked)
    return found, pages


async def push_guest(
    client: MewsClient, guest: dict[str, Any], known: Mapping[str, Customer] | None = None
) -> PushOutcome:
    """Re-read, merge and write one guest's pending edit (no database access). ``known`` is a
    read of the batch made just before (a guest missing from it is gone from Mews); without it,
    the guest is read here. After a 409 the guest is always read again."""
    mews_id, chain_id = guest["mews_id"], guest["chain_id"]
    changes = {k: v for k, v in (guest.get("changes") or {}).items() if k in FIELDS}
    base = guest.get("base") or {}
    edited_at = datetime.fromisoformat(guest["edited_at"])
    based_on = guest.get("base_updated_utc")
    base_updated_utc = datetime.fromisoformat(based_on) if based_on else None
    wrote = False
    conflict: MewsConflictError | None = None
    # conflicts already settled by a write that went through before a 409 (that field then
    # reads as unchanged): they stay in the log
    settled: dict[str, dict[str, Any]] = {}
    for attempt in range(1, MAX_ATTEMPTS + 1):
        if known is None or attempt > 1:
            known = (await read_customers(client, chain_id, [mews_id]))[0]
        current = known.get(mews_id)
        if current is None:
            return PushOutcome("refused", GONE, attempts=attempt, wrote=wrote)
        if not current.is_active or current.merge_target_id:
            return PushOutcome("refused", MERGED_AWAY, attempts=attempt, wrote=wrote)
        result = merge(
            changes,
            base,
            mews_values(current),
            edited_at,
            current.updated_utc,
            base_updated_utc=base_updated_utc,
        )
        plan = plan_requests(result.push)
        rows = conflict_rows(result.conflicts, current.updated_utc)
        try:
            if plan.sets:
                await client.update_customer(mews_id, plan.sets, chain_id=chain_id)
                wrote = True
                settled.update({r["field"]: r for r in rows if r["field"] in plan.set_columns})
            if plan.clears:
                await client.update_accounts(
                    [{"Id": mews_id, "Discriminator": "Customer", "Customer": plan.clears}],
                    chain_id=chain_id,
                )
                wrote = True
        except MewsConflictError as exc:
            conflict = exc
            log.info("push conflict, merging again", attempt=attempt, request_id=exc.request_id)
            continue
        except (MewsBusinessRuleError, MewsBadRequestError) as exc:
            return PushOutcome("refused", exc.message, attempts=attempt, wrote=wrote)
        decided = {c.field for c in result.conflicts}
        return PushOutcome(
            _status(result, plan),
            conflicts=[r for f, r in sorted(settled.items()) if f not in decided] + rows,
            fields=plan.fields,
            attempts=attempt,
            wrote=wrote,
        )
    message = conflict.message if conflict is not None else "conflict"
    return PushOutcome(
        "pending",
        f"Mews reported a conflict {MAX_ATTEMPTS} times (409: {message}); will try again",
        attempts=MAX_ATTEMPTS,
        wrote=wrote,
    )


def _status(result: MergeResult, plan: PushPlan) -> str:
    """``mews_won`` when nothing was sent because Mews won a field; else ``pushed`` (every field
    conflict is in the log either way)."""
    if plan.empty and result.mews_won:
        return "mews_won"
    return "pushed"


async def push_changes(
    store: Store,
    engine: SyncEngine,
    run: Run,
    *,
    limit: int = 100,
    concurrency: int = 32,
    time_budget_seconds: float = 240.0,
    progress: Callable[[int], None] | None = None,
    chain_ids: list[str] | None = None,
) -> None:
    """Push every pending staff edit (of the guests of ``chain_ids``: those the engine's
    connection covers; None: every chain), ``limit`` guests a batch, batch after batch until none is
    left or the time budget is spent. An edit still pending at the end (Mews kept answering
    409, or time ran out) makes the run ``partial`` and says how many; the next run pushes it.

    ``concurrency`` bounds the guests in flight at once (each has at most one request out); the
    token's shared budget, not this, decides how many requests go out per window. ``progress``
    is called as guests' pushes end, whatever their outcome: its counts add up to the edits
    handled."""
    deadline = time.monotonic() + time_budget_seconds
    chains = {} if chain_ids is None else {"p_chain_ids": chain_ids}
    tried: set[tuple[str, str]] = set()
    while time.monotonic() < deadline:
        pending = await store.call("push_pending", p_limit=limit, **chains)
        fresh = [g for g in pending if (str(g["mews_id"]), str(g["edited_at"])) not in tried]
        if not fresh:
            break
        tried.update((str(g["mews_id"]), str(g["edited_at"])) for g in fresh)
        await push_batch(store, engine, run, fresh, concurrency=concurrency, progress=progress)
    await push_merges(store, engine, run, chain_ids=chain_ids, deadline=deadline)
    left = await store.call("push_pending", p_limit=1000, **chains)
    if left:
        run.count(push_still_pending=len(left))
        run.degrade(
            "partial", f"{len(left)} staff edit(s) still pending; the next push retries them"
        )


async def push_batch(
    store: Store,
    engine: SyncEngine,
    run: Run,
    guests: list[dict[str, Any]],
    *,
    concurrency: int = 32,
    progress: Callable[[int], None] | None = None,
) -> None:
    """One batch: a read of all its guests per chain, then their writes ``concurrency`` at a
    time (the token's shared budget paces them), then one read of them all to mirror what Mews
    now has (the echo webhook then finds nothing new), then each outcome recorded.

    A guest whose push failed (Mews unreachable after the retries) costs only itself: the others
    are mirrored and recorded, then the first failure is raised; its edit stays pending."""
    # merged or deleted here already: Mews is not asked
    outcomes = {g["mews_id"]: PushOutcome("refused", MERGED_AWAY) for g in guests if not _live(g)}
    to_mews = [g for g in guests if _live(g)]
    if outcomes and progress is not None:
        progress(len(outcomes))
    known = await _read_by_chain(engine.client, to_mews)
    gate = asyncio.Semaphore(concurrency)

    async def one(guest: dict[str, Any]) -> None:
        async with gate:
            outcome = await push_guest(engine.client, guest, known)
        outcomes[guest["mews_id"]] = outcome
        if progress is not None:
            progress(1)

    results = await asyncio.gather(*(one(g) for g in to_mews), return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    mirrored = [g for g in to_mews if (o := outcomes.get(g["mews_id"])) and o.to_mirror]
    for chain_id, ids in _ids_by_chain(mirrored).items():
        for page in (await read_customers(engine.client, chain_id, ids))[1]:
            await engine.ingest(pushed(), page, run)
    ended = [g for g in guests if g["mews_id"] in outcomes]
    recorded = await asyncio.gather(
        *(_record(store, run, g, outcomes[g["mews_id"]]) for g in ended), return_exceptions=True
    )
    failures += [r for r in recorded if isinstance(r, BaseException)]
    if failures:
        raise failures[0]


def _live(guest: dict[str, Any]) -> bool:
    return bool(guest["is_active"]) and not guest["merge_target_id"]


async def _read_by_chain(client: MewsClient, guests: list[dict[str, Any]]) -> dict[str, Customer]:
    known: dict[str, Customer] = {}
    for chain_id, ids in _ids_by_chain(guests).items():
        known.update((await read_customers(client, chain_id, ids))[0])
    return known


def _ids_by_chain(guests: list[dict[str, Any]]) -> dict[str, list[str]]:
    chains: dict[str, list[str]] = {}
    for guest in guests:
        chains.setdefault(str(guest["chain_id"]), []).append(str(guest["mews_id"]))
    return chains


def _batches(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def _record(store: Store, run: Run, guest: dict[str, Any], outcome: PushOutcome) -> None:
    """Store one guest's outcome (``push_record``) and count it in the run."""
    if outcome.attempts > 1:
        run.count(push_resubmitted=outcome.attempts - 1)
    conflicts = outcome.conflicts
    if outcome.status == "refused":
        run.count(push_refused=1)
        if outcome.error not in (MERGED_AWAY, GONE):  # Mews refused it: staff must see why
            # (in the conflict log; nothing is left for a later push: the run still succeeds)
            conflicts = [refusal_row(guest["changes"], outcome.error)]
    elif outcome.status == "pending":
        run.count(push_kept_pending=1)
        run.degrade("partial", outcome.error)
    else:
        run.count(push_conflicts=len(conflicts))
    if outcome.status == "pushed":
        run.count(pushed=1, pushed_fields=outcome.fields)
    await store.call(
        "push_record",
        p_chain_id=guest["chain_id"],
        p_mews_id=guest["mews_id"],
        p_edited_at=guest["edited_at"],
        p_status=outcome.status,
        p_error=outcome.error,
        p_conflicts=conflicts,
    )


def refusal_row(changes: dict[str, Any], error: str | None) -> dict[str, Any]:
    """The ``conflict_log`` row of an edit Mews refused: the staff values and Mews' message."""
    return {
        "field": None,
        "local_value": changes,
        "mews_value": None,
        "resolution": "refused_by_mews",
        "detail": error,
        "mews_updated_utc": None,
    }


# -- merges decided by staff (accounts/merge, docs/MEWS.md#account-merge) ----------------------

MERGES_PER_REQUEST = 10  # AccountMergeParameters a request (docs/MEWS.md#item-caps)
TARGET_GONE = "the surviving profile no longer exists in Mews"
TARGET_MERGED = "the surviving profile was deleted or merged into another in Mews"
SOURCE_GONE = "the profile to merge away no longer exists in Mews"
MERGE_COUNTS = {"merged": "merged", "failed": "merges_failed", "pending": "merges_kept_pending"}
SOURCE_MERGED = "the profile to merge away was deleted or merged into another in Mews"


@dataclass(frozen=True)
class MergeRequest:
    """One staff decision to carry out: fold ``source`` into ``target`` (the survivor)."""

    chain_id: str
    guest_a: str
    guest_b: str
    source: str
    target: str
    decided_at: str

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> MergeRequest:
        return cls(
            str(row["chain_id"]),
            str(row["guest_a"]),
            str(row["guest_b"]),
            str(row["source"]),
            str(row["target"]),
            str(row["decided_at"]),
        )

    def parameters(self) -> dict[str, Any]:
        """The documented ``AccountMergeParameters`` item, exactly."""
        return {
            "SourceAccountIds": [self.source],
            "TargetAccountId": self.target,
            "AccountType": "Customer",
        }


@dataclass
class MergeOutcome:
    status: str  # merged | failed | pending
    error: str | None = None
    attempts: int = 0


def merge_check(asked: MergeRequest, known: Mapping[str, Customer]) -> MergeOutcome | None:
    """What Mews now holds says the merge is done or impossible; None: send it."""
    source, target = known.get(asked.source), known.get(asked.target)
    if target is None:
        return MergeOutcome("failed", TARGET_GONE)
    if not target.is_active or target.merge_target_id:
        return MergeOutcome("failed", TARGET_MERGED)
    if source is None:
        return MergeOutcome("failed", SOURCE_GONE)
    if source.merge_target_id == asked.target:
        return MergeOutcome("merged")  # done (by us before a 409, or by someone in Mews)
    if not source.is_active or source.merge_target_id:
        return MergeOutcome("failed", SOURCE_MERGED)
    return None


def _refused(exc: BaseException) -> bool:
    return isinstance(exc, MewsBadRequestError | MewsBusinessRuleError)


async def merge_chain(
    client: MewsClient, chain_id: str, merges: list[MergeRequest]
) -> dict[MergeRequest, MergeOutcome]:
    """Carry out a chain's merges (no database access): read both profiles of each, send the
    ones still to do, ``MERGES_PER_REQUEST`` a request; a request Mews refuses (400/403) is split
    until each refused merge is alone. After a 409 the merges of that request are read again
    and resubmitted, ``MAX_ATTEMPTS`` times in all; then they stay pending with the error."""
    outcomes: dict[MergeRequest, MergeOutcome] = {}
    todo = list(merges)
    conflict: MewsConflictError | None = None
    for attempt in range(1, MAX_ATTEMPTS + 1):
        ids = sorted({i for m in todo for i in (m.source, m.target)})
        known = (await read_customers(client, chain_id, ids))[0]
        ready = []
        for asked in todo:
            settled = merge_check(asked, known)
            if settled is None:
                ready.append(asked)
            else:
                settled.attempts = attempt
                outcomes[asked] = settled
        again: list[MergeRequest] = []
        for group in _merge_groups(ready):
            try:
                sent = await isolate(group, partial(_send_merges, client), _refused)
            except MewsConflictError as exc:
                conflict = exc
                log.info(
                    "merge conflict, reading again", attempt=attempt, request_id=exc.request_id
                )
                again += group
                continue
            for asked in sent.accepted:
                outcomes[asked] = MergeOutcome("merged", attempts=attempt)
            for asked, refusal in sent.refused:
                message = getattr(refusal, "message", None) or str(refusal)
                outcomes[asked] = MergeOutcome(
                    "failed", f"Mews refused the merge: {message}", attempt
                )
        todo = again
        if not todo:
            return outcomes
    message = conflict.message if conflict is not None else "conflict"
    for asked in todo:
        outcomes[asked] = MergeOutcome(
            "pending",
            f"Mews reported a conflict {MAX_ATTEMPTS} times (409: {message}); will try again",
            MAX_ATTEMPTS,
        )
    return outcomes


async def _send_merges(client: MewsClient, merges: list[MergeRequest]) -> dict[str, Any]:
    return await client.merge_accounts([m.parameters() for m in merges])


def _merge_groups(merges: list[MergeRequest]) -> list[list[MergeRequest]]:
    """Requests of at most ``MERGES_PER_REQUEST``; a profile is in one merge of a request at most
    (a survivor merged away in the same request would be undefined): the rest go in later ones."""
    groups: list[list[MergeRequest]] = []
    for asked in merges:
        for group in groups:
            busy = {i for m in group for i in (m.source, m.target)}
            if len(group) < MERGES_PER_REQUEST and not busy & {asked.source, asked.target}:
                group.append(asked)
                break
        else:
            groups.append([asked])
    return groups


async def push_merges(
    store: Store,
    engine: SyncEngine,
    run: Run,
    *,
    chain_ids: list[str] | None = None,
    limit: int = 100,
    deadline: float | None = None,
) -> None:
    """Carry out the merges staff decided (of ``chain_ids``; None: every chain), ``limit`` a
    batch until none is left or the deadline passes; mirror both profiles of each from Mews;
    record each outcome. A merge still pending at the end makes the run ``partial``."""
    chains = {} if chain_ids is None else {"p_chain_ids": chain_ids}
    tried: set[MergeRequest] = set()
    while deadline is None or time.monotonic() < deadline:
        rows = await store.call("duplicate_merges_pending", p_limit=limit, **chains)
        fresh = [m for m in map(MergeRequest.from_row, rows) if m not in tried]
        if not fresh:
            break
        tried.update(fresh)
        by_chain: dict[str, list[MergeRequest]] = {}
        for asked in fresh:
            by_chain.setdefault(asked.chain_id, []).append(asked)
        for chain_id, merges in by_chain.items():
            outcomes = await merge_chain(engine.client, chain_id, merges)
            ids = sorted({i for m in merges for i in (m.source, m.target)})
            for page in (await read_customers(engine.client, chain_id, ids))[1]:
                await engine.ingest(pushed(), page, run)
            for asked, outcome in outcomes.items():
                await _record_merge(store, run, asked, outcome)
    left = await store.call("duplicate_merges_pending", p_limit=1000, **chains)
    if left:
        run.count(merges_still_pending=len(left))
        run.degrade(
            "partial",
            f"{len(left)} merge(s) decided by staff still pending; the next push retries them",
            kind="merges",
        )


async def _record_merge(store: Store, run: Run, asked: MergeRequest, outcome: MergeOutcome) -> None:
    if outcome.attempts > 1:
        run.count(merges_resubmitted=outcome.attempts - 1)
    run.count(**{MERGE_COUNTS[outcome.status]: 1})
    await store.call(
        "duplicate_merge_record",
        p_chain_id=asked.chain_id,
        p_guest_a=asked.guest_a,
        p_guest_b=asked.guest_b,
        p_decided_at=asked.decided_at,
        p_status=outcome.status,
        p_error=outcome.error,
        p_run_id=run.id,
    )
