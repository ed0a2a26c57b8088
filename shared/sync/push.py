"""Pushing staff edits back to Mews: a field-level three-way merge (shared/sync/merge.py).

For each guest with pending local changes: re-read the customer from Mews (there is no
conditional write) and merge field by field against the values the staff member saw
(``local_base``): a field Mews did not change is pushed; a field both sides changed goes to the
later write and is logged with both values; a field Mews already holds is left alone. Values go
through ``customers/update``, clears through ``accounts/update`` (``customers/update`` cannot
blank a field). A 409 (data changed meanwhile) means re-read, re-merge and resubmit, a few
times, then the edit stays pending with the error. A refusal (400/403, e.g. a duplicate e-mail)
is recorded on the row for staff, never retried. The answer is mirrored at once; the webhook
that follows (our echo) then finds nothing new.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.db.store import Store
from shared.logs import get_logger
from shared.mews.client import MewsClient, Page
from shared.mews.errors import MewsBadRequestError, MewsBusinessRuleError, MewsConflictError
from shared.mews.models import Customer
from shared.sync.engine import SyncEngine
from shared.sync.merge import FieldConflict, MergeResult, merge
from shared.sync.runs import Run

log = get_logger(__name__)

# local column (= Customer attribute) → (customers/update name, accounts/update name)
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

# 409 (CONNECTOR-API §5): re-read, re-merge and resubmit at most this many times in all
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
    page: Page[Customer] | None = None  # the last read, to mirror when nothing was written


async def read_customer(
    client: MewsClient, mews_id: str
) -> tuple[Customer | None, Page[Customer] | None]:
    current: Customer | None = None
    last: Page[Customer] | None = None
    async for page in client.customers(customer_ids=[mews_id]):
        last = page
        current = next((c for c in page.items if c.id == mews_id), current)
    return current, last


async def push_guest(client: MewsClient, guest: dict[str, Any]) -> PushOutcome:
    """Re-read, merge and write one guest's pending edit (no database access)."""
    mews_id = guest["mews_id"]
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
        current, page = await read_customer(client, mews_id)
        if current is None:
            return PushOutcome("refused", GONE, attempts=attempt, wrote=wrote)
        if not current.is_active or current.merge_target_id:
            return PushOutcome("refused", MERGED_AWAY, attempts=attempt, wrote=wrote, page=page)
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
                await client.update_customer(mews_id, plan.sets)
                wrote = True
                settled.update({r["field"]: r for r in rows if r["field"] in plan.set_columns})
            if plan.clears:
                await client.update_accounts(
                    [{"Id": mews_id, "Discriminator": "Customer", "Customer": plan.clears}]
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
            page=page,
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
    concurrency: int = 8,
    time_budget_seconds: float = 240.0,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Push every pending staff edit, ``concurrency`` guests at a time (the token's shared
    budget paces them), batch after batch until none is left or the time budget is spent. An
    edit still pending at the end (Mews kept answering 409, or time ran out) makes the run
    ``partial`` and says how many; it is pushed by the next run."""
    deadline = time.monotonic() + time_budget_seconds
    tried: set[tuple[str, str]] = set()
    gate = asyncio.Semaphore(concurrency)

    async def one(guest: dict[str, Any]) -> None:
        async with gate:
            await _push_one(store, engine, run, guest)
        if progress is not None:
            progress(1)

    while time.monotonic() < deadline:
        pending = await store.call("push_pending", p_limit=limit)
        fresh = [g for g in pending if (str(g["mews_id"]), str(g["edited_at"])) not in tried]
        if not fresh:
            break
        tried.update((str(g["mews_id"]), str(g["edited_at"])) for g in fresh)
        results = await asyncio.gather(*(one(g) for g in fresh), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]
    left = await store.call("push_pending", p_limit=1000)
    if left:
        run.count(push_still_pending=len(left))
        run.degrade(
            "partial", f"{len(left)} staff edit(s) still pending; the next push retries them"
        )


async def _push_one(store: Store, engine: SyncEngine, run: Run, guest: dict[str, Any]) -> None:
    chain_id, mews_id, edited_at = guest["chain_id"], guest["mews_id"], guest["edited_at"]

    async def record(
        status: str, error: str | None = None, conflicts: list[dict[str, Any]] | None = None
    ) -> None:
        await store.call(
            "push_record",
            p_chain_id=chain_id,
            p_mews_id=mews_id,
            p_edited_at=edited_at,
            p_status=status,
            p_error=error,
            p_conflicts=conflicts or [],
        )

    if not guest["is_active"] or guest["merge_target_id"]:
        await record("refused", MERGED_AWAY)
        run.count(push_refused=1)
        return
    outcome = await push_guest(engine.client, guest)
    if outcome.attempts > 1:
        run.count(push_resubmitted=outcome.attempts - 1)
    if outcome.wrote:
        # mirror what Mews now has (the echo webhook will then change nothing)
        await engine.refresh("customers", [mews_id], run)
    elif outcome.page is not None:
        await engine.ingest("customers", outcome.page, run)
    if outcome.status == "refused":
        conflicts = []
        if outcome.error not in (MERGED_AWAY, GONE):
            conflicts = [
                {
                    "field": None,
                    "local_value": guest["changes"],
                    "mews_value": None,
                    "resolution": "refused_by_mews",
                    "detail": outcome.error,
                    "mews_updated_utc": None,
                }
            ]
            run.degrade("partial", f"Mews refused an edit: {outcome.error}")
        await record("refused", outcome.error, conflicts)
        run.count(push_refused=1)
        return
    if outcome.status == "pending":
        await record("pending", outcome.error)
        run.count(push_kept_pending=1)
        run.degrade("partial", outcome.error)
        return
    await record(outcome.status, conflicts=outcome.conflicts)
    run.count(push_conflicts=len(outcome.conflicts))
    if outcome.status == "pushed":
        run.count(pushed=1, pushed_fields=outcome.fields)
