"""The write side of the simulator: customers/add, customers/update, accounts/update,
accounts/merge, and the admin mutations that stand in for hotel staff working in Mews."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.simulator.data import (
    CUSTOMER_KEYS,
    INTEGRATION_PROFILE_ID,
    RESERVATION_STATES,
    RESOURCE_STATES,
    STAFF_PROFILE_ID,
    SimData,
    fmt,
    parse,
)
from shared.simulator.queries import RequestError

# customers/update: plain values; these three are String update values
_PLAIN_FIELDS = [
    "Title",
    "FirstName",
    "LastName",
    "SecondLastName",
    "NationalityCode",
    "PreferredLanguageCode",
    "Sex",
    "BirthDate",
    "BirthCountryCode",
    "BirthCountrySubdivisionCode",
    "BirthPlace",
    "Occupation",
    "Email",
    "Phone",
    "LoyaltyCode",
    "Notes",
    "CarRegistrationNumber",
    "DietaryRequirements",
    "TaxIdentificationNumber",
    "CompanyId",
    "Classifications",
    "Options",
]
_UPDATE_VALUE_FIELDS = ("ItalianDestinationCode", "ItalianFiscalCode", "ItalianLotteryCode")
# accounts/update customer names → Customer object names
_ACCOUNT_FIELDS = {
    "Email": "Email",
    "TaxIdentifier": "TaxIdentificationNumber",
    "BillingCode": "BillingCode",
    "AccountingCode": "AccountingCode",
    "Notes": "Notes",
    "LastName": "LastName",
    "FirstName": "FirstName",
    "SecondLastName": "SecondLastName",
    "BirthPlace": "BirthPlace",
    "Telephone": "Phone",
    "Occupation": "Occupation",
    "CarRegistrationNumber": "CarRegistrationNumber",
    "DietaryRequirements": "DietaryRequirements",
    "LoyaltyCode": "LoyaltyCode",
    "NationalityCode": "NationalityCode",
    "CompanyId": "CompanyId",
    "BirthDate": "BirthDate",
    "Sex": "Sex",
    "Title": "Title",
    "PreferredLanguageCode": "PreferredLanguageCode",
}


class Clock:
    """Write timestamps: real time, strictly increasing per record (Mews' second resolution).
    A test moves it (:meth:`shift`) to stamp a write seconds before or after another instead of
    waiting for the next second."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def shift(self, seconds: float) -> None:
        """Move the clock by ``seconds`` (negative: back); a record's stamps still only rise."""
        self.offset += timedelta(seconds=seconds)

    def stamp(self, previous: str | None) -> str:
        now = (datetime.now(UTC) + self.offset).replace(microsecond=0)
        if previous is not None and now <= parse(previous):
            now = parse(previous) + timedelta(seconds=1)
        return fmt(now)


def _email_taken(data: SimData, email: str, own_id: str | None) -> bool:
    wanted = email.strip().lower()
    return any(
        c["Id"] != own_id and c["IsActive"] and (c["Email"] or "").lower() == wanted
        for c in data.customers.values()
    )


def _customer(data: SimData, customer_id: Any) -> dict[str, Any]:
    if not isinstance(customer_id, str) or customer_id not in data.customers:
        raise RequestError(400, "Invalid CustomerId.")
    return data.customers[customer_id]


def update_customer(data: SimData, body: dict[str, Any], clock: Clock) -> dict[str, Any]:
    data.version += 1
    customer = _customer(data, body.get("CustomerId"))
    if not customer["IsActive"]:
        raise RequestError(400, "Invalid CustomerId: the customer is not active.")
    email = body.get("Email")
    if email and _email_taken(data, email, customer["Id"]):
        raise RequestError(403, "A customer with the same e-mail address already exists.")
    for name in _PLAIN_FIELDS:
        value = body.get(name)
        if value in (None, "", []):
            continue  # customers/update cannot clear a field
        customer[name] = value
    for name in _UPDATE_VALUE_FIELDS:
        wrapper = body.get(name)
        if isinstance(wrapper, dict) and "Value" in wrapper:
            customer[name] = wrapper["Value"]
    _touch(customer, clock)
    return customer


def add_customer(
    data: SimData, body: dict[str, Any], clock: Clock, new_id: Any
) -> tuple[dict[str, Any], bool]:
    """(customer, created) — an existing customer with that e-mail is refused or overwritten."""
    data.version += 1
    if not isinstance(body.get("LastName"), str) or not body["LastName"]:
        raise RequestError(400, "Invalid LastName.")
    if not isinstance(body.get("OverwriteExisting"), bool):
        raise RequestError(400, "Invalid OverwriteExisting.")
    email = body.get("Email")
    if email and _email_taken(data, email, None):
        if not body["OverwriteExisting"]:
            raise RequestError(403, "A customer with the same e-mail address already exists.")
        existing = next(
            c for c in data.customers.values() if (c["Email"] or "").lower() == email.lower()
        )
        for name in ("Title", "FirstName", "LastName", "SecondLastName", "Sex", "BirthDate"):
            if body.get(name):
                existing[name] = body[name]
        _touch(existing, clock)
        return existing, False
    now = clock.stamp(None)
    customer: dict[str, Any] = dict.fromkeys(CUSTOMER_KEYS)
    customer.update(
        Id=new_id(),
        ChainId=body.get("ChainId") or data.chain_id,
        Number=str(100000 + len(data.customers)),
        HasOtaEmail=False,
        Notes=body.get("Notes") or "",
        CreatedUtc=now,
        UpdatedUtc=now,
        Classifications=[],
        Options=[],
        PreferredSpaceFeatures=[],
        IsActive=True,
        ActivityState=None,
        CreatorProfileId=INTEGRATION_PROFILE_ID,
        UpdaterProfileId=INTEGRATION_PROFILE_ID,
    )
    for name in _PLAIN_FIELDS:
        if body.get(name) not in (None, ""):
            customer[name] = body[name]
    data.customers[customer["Id"]] = customer
    return customer, True


def update_accounts(data: SimData, body: dict[str, Any], clock: Clock) -> dict[str, Any]:
    data.version += 1
    updates = body.get("AccountUpdates")
    if not isinstance(updates, list) or not updates:
        raise RequestError(400, "Invalid AccountUpdates.")
    if len(updates) > 1000:
        raise RequestError(400, "Invalid AccountUpdates: at most 1000 items are allowed.")
    accounts = []
    for update in updates:
        if not isinstance(update, dict) or update.get("Discriminator") != "Customer":
            raise RequestError(400, "Invalid AccountUpdates: only customers are simulated.")
        customer = _customer(data, update.get("Id"))
        changes = update.get("Customer") or {}
        email = (
            (changes.get("Email") or {}).get("Value")
            if isinstance(changes.get("Email"), dict)
            else None
        )
        if email and _email_taken(data, email, customer["Id"]):
            raise RequestError(403, "A customer with the same e-mail address already exists.")
        for name, field in _ACCOUNT_FIELDS.items():
            wrapper = changes.get(name)
            if isinstance(wrapper, dict) and "Value" in wrapper:
                value = wrapper["Value"]
                if field == "BirthDate" and isinstance(value, str):
                    value = value[:10]
                customer[field] = value  # {"Value": null} clears
        _touch(customer, clock)
        accounts.append(
            {
                "Id": customer["Id"],
                "Discriminator": "Customer",
                "Company": None,
                "Customer": {
                    **{n: customer[f] for n, f in _ACCOUNT_FIELDS.items()},
                    "BirthDate": f"{customer['BirthDate']}T00:00:00Z"
                    if customer["BirthDate"]
                    else None,
                    "ChainId": customer["ChainId"],
                    "CreatedUtc": customer["CreatedUtc"],
                    "UpdatedUtc": customer["UpdatedUtc"],
                    "UpdaterProfileId": customer["UpdaterProfileId"],
                },
            }
        )
    return {"Accounts": accounts}


def merge_accounts(data: SimData, body: dict[str, Any], clock: Clock) -> list[str]:
    """``accounts/merge`` (docs/MEWS.md#account-merge): each of at most 10
    ``AccountMergeParameters`` folds its ``SourceAccountIds`` (at most 1000) into
    ``TargetAccountId``, which keeps its id. A merged-away customer is inactive and carries the
    target in ``MergeTargetId`` (as the seeded merges). The request is checked whole before
    anything is merged; the ids merged away and their targets are returned (their events)."""
    data.version += 1
    merges = body.get("AccountMergeParameters")
    if not isinstance(merges, list) or not merges:
        raise RequestError(400, "Invalid AccountMergeParameters.")
    if len(merges) > 10:
        raise RequestError(400, "Invalid AccountMergeParameters: at most 10 items are allowed.")
    planned: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for merge in merges:
        if not isinstance(merge, dict) or merge.get("AccountType") not in ("Customer", "Company"):
            raise RequestError(400, "Invalid AccountType.")
        if merge["AccountType"] != "Customer":
            raise RequestError(400, "Invalid AccountType: only customers are simulated.")
        sources = merge.get("SourceAccountIds")
        if not isinstance(sources, list) or not sources or len(sources) > 1000:
            raise RequestError(400, "Invalid SourceAccountIds.")
        target_id = merge.get("TargetAccountId")
        target = data.customers.get(target_id) if isinstance(target_id, str) else None
        if target is None or not target["IsActive"] or target["MergeTargetId"]:
            raise RequestError(400, "Invalid TargetAccountId.")
        for source_id in sources:
            source = data.customers.get(source_id) if isinstance(source_id, str) else None
            if source is None or source is target or not source["IsActive"]:
                raise RequestError(400, "Invalid SourceAccountIds.")
            planned.append((source, target))
    for source, target in planned:
        source.update(IsActive=False, ActivityState="Deleted", MergeTargetId=target["Id"])
        _touch(source, clock)
        data.deleted_utc[source["Id"]] = source["UpdatedUtc"]
    return [c["Id"] for pair in planned for c in pair]


def _touch(customer: dict[str, Any], clock: Clock, profile: str = INTEGRATION_PROFILE_ID) -> None:
    customer["UpdatedUtc"] = clock.stamp(customer["UpdatedUtc"])
    customer["UpdaterProfileId"] = profile


def mutate(
    data: SimData,
    clock: Clock,
    rng: random.Random,
    new_id: Any,
    *,
    customers_added: int = 0,
    customers_updated: int = 0,
    reservations_updated: int = 0,
    resources_updated: int = 0,
) -> dict[str, list[str]]:
    """Staff at work in Mews: the ids changed, per kind."""
    data.version += 1
    changed: dict[str, list[str]] = {
        "customers_added": [],
        "customers_updated": [],
        "reservations": [],
        "resources": [],
    }
    for _ in range(customers_added):
        customer, _created = add_customer(
            data,
            {
                "LastName": rng.choice(("Novák", "Okafor", "Nakamura", "Ferreira")),
                "FirstName": rng.choice(("Ana", "Ben", "Chen", "Dara")),
                "OverwriteExisting": False,
            },
            clock,
            new_id,
        )
        customer["CreatorProfileId"] = customer["UpdaterProfileId"] = STAFF_PROFILE_ID
        changed["customers_added"].append(customer["Id"])
    active = [c for c in data.customers.values() if c["IsActive"]]
    for customer in rng.sample(active, min(customers_updated, len(active))):
        customer["Phone"] = f"+44 20 7946 {rng.randrange(10000):04d}"
        _touch(customer, clock, STAFF_PROFILE_ID)
        changed["customers_updated"].append(customer["Id"])
    reservations = list(data.reservations.values())
    for reservation in rng.sample(reservations, min(reservations_updated, len(reservations))):
        reservation["State"] = rng.choice(RESERVATION_STATES)
        reservation["UpdatedUtc"] = clock.stamp(reservation["UpdatedUtc"])
        changed["reservations"].append(reservation["Id"])
    resources = list(data.resources.values())
    for resource in rng.sample(resources, min(resources_updated, len(resources))):
        resource["State"] = rng.choice(RESOURCE_STATES)
        resource["UpdatedUtc"] = clock.stamp(resource["UpdatedUtc"])
        changed["resources"].append(resource["Id"])
    return changed
