"""Pushing staff edits back to Mews, last write wins.

For each guest with pending local changes: re-read the customer from Mews (there is no
conditional write); if Mews changed it after the staff edit, Mews wins and each field is logged
with both values; otherwise send only the changed fields — values through ``customers/update``,
clears through ``accounts/update`` (``customers/update`` cannot blank a field). A refusal
(400/403, e.g. a duplicate e-mail) is recorded on the row for staff, never retried. The answer
is upserted at once; the webhook that follows (our echo) then finds nothing new.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.db.store import Store
from shared.logs import get_logger
from shared.mews.errors import MewsBadRequestError, MewsBusinessRuleError, MewsConflictError
from shared.mews.models import Customer
from shared.sync.engine import SyncEngine
from shared.sync.runs import Run

log = get_logger(__name__)

# local column → (customers/update name, accounts/update name, Customer attribute)
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


@dataclass(frozen=True)
class PushPlan:
    """What to send for one guest (pure decision)."""

    decision: str  # push | mews_won | nothing
    sets: dict[str, Any]  # customers/update fields
    clears: dict[str, Any]  # accounts/update fields ({"Value": None})
    conflicts: list[dict[str, Any]]


def _mews_value(customer: Customer, column: str) -> Any:
    value = getattr(customer, column)
    return value.isoformat() if hasattr(value, "isoformat") else value


def plan_push(changes: dict[str, Any], edited_at: datetime, current: Customer) -> PushPlan:
    """Decide, field by field, against the customer as Mews has it now."""
    if current.updated_utc > edited_at:
        conflicts = [
            {
                "field": column,
                "local_value": value,
                "mews_value": _mews_value(current, column),
                "resolution": "mews_won",
                "detail": "Mews changed the profile after the local edit",
                "mews_updated_utc": current.updated_utc.isoformat(),
            }
            for column, value in sorted(changes.items())
        ]
        return PushPlan("mews_won", {}, {}, conflicts)
    sets: dict[str, Any] = {}
    clears: dict[str, Any] = {}
    for column, value in sorted(changes.items()):
        if column not in FIELDS or value == _mews_value(current, column):
            continue
        update_name, account_name = FIELDS[column]
        if value in (None, ""):
            clears[account_name] = {"Value": None}
        else:
            sets[update_name] = value
    return PushPlan("push" if sets or clears else "nothing", sets, clears, [])


async def push_changes(store: Store, engine: SyncEngine, run: Run, *, limit: int = 100) -> None:
    pending = await store.call("push_pending", p_limit=limit)
    for guest in pending:
        await _push_one(store, engine, run, guest)


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
        await record(
            "refused", "the profile was deleted or merged in Mews; edit the surviving profile"
        )
        run.count(push_refused=1)
        return
    current = None
    async for page in engine.client.customers(customer_ids=[mews_id]):
        current = next(iter(page.items), current)
    if current is None:
        await record("refused", "the customer no longer exists in Mews")
        run.count(push_refused=1)
        return
    plan = plan_push(guest["changes"] or {}, datetime.fromisoformat(edited_at), current)
    if plan.decision == "mews_won":
        await record("mews_won", conflicts=plan.conflicts)
        run.count(push_conflicts=len(plan.conflicts))
        return
    try:
        answer = current
        if plan.sets:
            answer = await engine.client.update_customer(mews_id, plan.sets)
        if plan.clears:
            await engine.client.update_accounts(
                [{"Id": mews_id, "Discriminator": "Customer", "Customer": plan.clears}]
            )
    except (MewsBusinessRuleError, MewsBadRequestError, MewsConflictError) as exc:
        await record(
            "refused",
            exc.message,
            [
                {
                    "field": None,
                    "local_value": guest["changes"],
                    "mews_value": None,
                    "resolution": "refused_by_mews",
                    "detail": exc.message,
                    "mews_updated_utc": None,
                }
            ],
        )
        run.count(push_refused=1)
        run.degrade("partial", f"Mews refused an edit: {exc.message}")
        return
    # mirror what Mews now has (the echo webhook will then change nothing)
    await engine.refresh("customers", [mews_id], run)
    del answer
    await record("pushed")
    run.count(pushed=1, pushed_fields=len(plan.sets) + len(plan.clears))
