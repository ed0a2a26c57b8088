"""The read side of the simulator: Mews' filters, limits and cursor paging over the data.

Pure functions over dicts; the server maps :class:`RequestError` to a Mews error response.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.simulator.data import SimData

MAX_INTERVAL = timedelta(days=92)  # Mews: "3 months"


class RequestError(Exception):
    """A request Mews would refuse: ``status`` and the Mews ``Message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ReadSpec:
    """One getAll operation: its collection, filters and limits (docs/MEWS.md#item-caps,
    #window-limits)."""

    result_key: str
    records: Callable[[SimData], Iterable[dict[str, Any]]]
    id_filters: Mapping[str, tuple[str, int]]  # request name → (record field, max items)
    time_filters: Mapping[str, str]  # request name → record field
    required_one_of: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    extra: Callable[[SimData, dict[str, Any], dict[str, Any]], bool] | None = None
    order_field: str = "CreatedUtc"
    extras_in_response: dict[str, Any] = field(default_factory=dict)
    # the collection by Id, when it is kept so: a read by ids looks them up instead of
    # scanning every record (a read by id per change, on properties of thousands of records)
    keyed: Callable[[SimData], Mapping[str, dict[str, Any]]] | None = None


def _parse_time(name: str, value: Any) -> datetime:
    if not isinstance(value, str):
        raise RequestError(400, f"Invalid {name}.")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RequestError(400, f"Invalid {name}.") from None


def time_bounds(name: str, interval: Any) -> tuple[str, str, bool]:
    """(start, end, equality) in Mews' canonical text form; checks the maximum length."""
    if not isinstance(interval, dict) or "StartUtc" not in interval or "EndUtc" not in interval:
        raise RequestError(400, f"Invalid {name}: StartUtc and EndUtc are required.")
    start = _parse_time(f"{name}.StartUtc", interval["StartUtc"])
    end = _parse_time(f"{name}.EndUtc", interval["EndUtc"])
    if end < start:
        raise RequestError(400, f"Invalid {name}: EndUtc precedes StartUtc.")
    if end - start > MAX_INTERVAL:
        raise RequestError(400, f"Invalid {name}: the interval exceeds the maximum of 3 months.")
    fmt = "%Y-%m-%dT%H:%M:%S"
    return start.strftime(fmt) + "Z", end.strftime(fmt) + "Z", start == end


def _limitation(body: dict[str, Any]) -> tuple[int, str | None]:
    limitation = body.get("Limitation")
    if not isinstance(limitation, dict):
        raise RequestError(400, "Invalid Limitation: Limitation is required.")
    count = limitation.get("Count")
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 1000:
        raise RequestError(400, "Invalid Limitation.Count: it must be between 1 and 1000.")
    cursor = limitation.get("Cursor")
    if cursor is not None and not isinstance(cursor, str):
        raise RequestError(400, "Invalid Limitation.Cursor.")
    return count, cursor


def _candidates(
    spec: ReadSpec,
    data: SimData,
    id_sets: list[tuple[str, set[str]]],
    windows: list[tuple[str, str, str, bool]],
) -> Iterable[dict[str, Any]]:
    """The records a read's filters are checked on: those of the ids asked for (a collection
    kept by Id), or those of the first time filter's window (bisected on a sorted index), else
    every record."""
    by_id = next((wanted for record_field, wanted in id_sets if record_field == "Id"), None)
    if by_id is not None and spec.keyed is not None:
        keyed = spec.keyed(data)
        return [keyed[i] for i in sorted(by_id) if i in keyed]
    if windows and not windows[0][0].startswith("#"):
        record_field, start, end, equality = windows[0]
        keys, ordered = data.sorted_by(spec.result_key, record_field, spec.records(data))
        low = bisect.bisect_left(keys, start)
        high = bisect.bisect_right(keys, start) if equality else bisect.bisect_left(keys, end)
        return ordered[low:high]
    return spec.records(data)


def run_read(spec: ReadSpec, data: SimData, body: dict[str, Any]) -> dict[str, Any]:
    """Answer a getAll request: the page of records and the cursor."""
    count, cursor = _limitation(body)
    for name in spec.required:
        if not body.get(name):
            raise RequestError(400, f"Invalid {name}: {name} is required.")
    if spec.required_one_of and not any(body.get(n) for n in spec.required_one_of):
        raise RequestError(
            400, f"Invalid request: one of {', '.join(spec.required_one_of)} is required."
        )
    id_sets: list[tuple[str, set[str]]] = []
    for name, (record_field, maximum) in spec.id_filters.items():
        values = body.get(name)
        if values is None:
            continue
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise RequestError(400, f"Invalid {name}.")
        if len(values) > maximum:
            raise RequestError(400, f"Invalid {name}: at most {maximum} items are allowed.")
        id_sets.append((record_field, set(values)))
    windows: list[tuple[str, str, str, bool]] = []
    for name, record_field in spec.time_filters.items():
        if body.get(name) is not None:
            start, end, equality = time_bounds(name, body[name])
            windows.append((record_field, start, end, equality))
    order_field = windows[0][0] if windows else spec.order_field

    def keep(record: dict[str, Any]) -> bool:
        for record_field, wanted in id_sets:
            if record.get(record_field) not in wanted:
                return False
        for record_field, start, end, equality in windows:
            value = _field(data, record, record_field)
            if value is None:
                return False
            value = value[:19] + "Z"
            if equality:
                if value != start:
                    return False
            elif not start <= value < end:
                return False
        return spec.extra is None or spec.extra(data, body, record)  # noqa: S610 - not Django

    def match() -> tuple[list[dict[str, Any]], dict[str, int]]:
        matched = [r for r in _candidates(spec, data, id_sets, windows) if keep(r)]
        matched.sort(key=lambda r: (_field(data, r, order_field) or "", r["Id"]), reverse=True)
        return matched, {r["Id"]: i for i, r in enumerate(matched)}

    filters = {k: v for k, v in body.items() if k != "Limitation"}
    matched, positions = data.matches(spec.result_key, filters, match)
    start_at = 0
    if cursor is not None:
        if cursor not in positions:
            raise RequestError(400, "Invalid Limitation.Cursor.")
        start_at = positions[cursor] + 1
    page = matched[start_at : start_at + count]
    next_cursor = page[-1]["Id"] if page else None
    return {spec.result_key: page, **spec.extras_in_response, "Cursor": next_cursor}


def _field(data: SimData, record: dict[str, Any], name: str) -> str | None:
    if name == "#DeletedUtc":
        return data.deleted_utc.get(record["Id"])
    value = record.get(name)
    return value if isinstance(value, str) else None


def _activity(data: SimData, body: dict[str, Any], record: dict[str, Any]) -> bool:
    states = body.get("ActivityStates")
    if states is None:
        return True
    if not isinstance(states, list):
        raise RequestError(400, "Invalid ActivityStates.")
    return ("Active" if record.get("IsActive", True) else "Deleted") in states


def _customers_extra(data: SimData, body: dict[str, Any], record: dict[str, Any]) -> bool:
    # Extent is documented as required, yet clients that omit it receive customers
    # (docs/MEWS.md#customers)
    extent = body.get("Extent")
    if isinstance(extent, dict) and not extent.get("Customers"):
        return False
    return _activity(data, body, record)


def _reservations_extra(data: SimData, body: dict[str, Any], record: dict[str, Any]) -> bool:
    enterprises = body.get("EnterpriseIds")
    if enterprises is not None:
        if len(enterprises) > 1000:
            raise RequestError(400, "Invalid EnterpriseIds: at most 1000 items are allowed.")
        if data.services.get(record["ServiceId"]) not in set(enterprises):
            return False
    states = body.get("States")
    return states is None or record["State"] in states


def _resources_extra(data: SimData, body: dict[str, Any], record: dict[str, Any]) -> bool:
    extent = body.get("Extent")
    if not isinstance(extent, dict):
        raise RequestError(400, "Invalid Extent: Extent is required.")
    if not extent.get("Resources"):
        return False
    return bool(extent.get("Inactive")) or record["IsActive"]


READS: dict[str, ReadSpec] = {
    "customers/getAll": ReadSpec(
        "Customers",
        lambda d: d.customers.values(),
        {
            "CustomerIds": ("Id", 1000),
            "ChainIds": ("ChainId", 1000),
            "CompanyIds": ("CompanyId", 1),
            "Emails": ("Email", 1000),
            "FirstNames": ("FirstName", 1000),
            "LastNames": ("LastName", 1000),
            "LoyaltyCodes": ("LoyaltyCode", 1000),
        },
        {"CreatedUtc": "CreatedUtc", "UpdatedUtc": "UpdatedUtc", "DeletedUtc": "#DeletedUtc"},
        keyed=lambda d: d.customers,
        required_one_of=(
            "CustomerIds",
            "ChainIds",
            "CreatedUtc",
            "UpdatedUtc",
            "DeletedUtc",
            "CompanyIds",
            "Emails",
            "FirstNames",
            "LastNames",
            "LoyaltyCodes",
        ),
        extra=_customers_extra,
        extras_in_response={"Documents": None},
    ),
    "companies/getAll": ReadSpec(
        "Companies",
        lambda d: d.companies.values(),
        {
            "Ids": ("Id", 1000),
            "ChainIds": ("ChainId", 1000),
            "Names": ("Name", 1000),
            "MotherCompanyIds": ("MotherCompanyId", 1000),
            "ExternalIdentifiers": ("ExternalIdentifier", 1000),
        },
        {"CreatedUtc": "CreatedUtc", "UpdatedUtc": "UpdatedUtc"},
        keyed=lambda d: d.companies,
        extra=_activity,
    ),
    "addresses/getAll": ReadSpec(
        "Addresses",
        lambda d: d.addresses.values(),
        {
            "AccountIds": ("AccountId", 1000),
            "AddressIds": ("Id", 1000),
            "ChainIds": ("ChainId", 1000),
        },
        {"UpdatedUtc": "UpdatedUtc"},
        keyed=lambda d: d.addresses,
        required_one_of=("AccountIds", "AddressIds", "ChainIds", "UpdatedUtc"),
        extra=_activity,
        order_field="UpdatedUtc",
    ),
    "identityDocuments/getAll": ReadSpec(
        "IdentityDocuments",
        lambda d: d.documents.values(),
        {"CustomerIds": ("CustomerId", 100), "IdentityDocumentIds": ("Id", 100)},
        {},
        required=("CustomerIds",),
        order_field="Id",
    ),
    "reservations/getAll/2023-06-06": ReadSpec(
        "Reservations",
        lambda d: d.reservations.values(),
        {
            "ReservationIds": ("Id", 1000),
            "ServiceIds": ("ServiceId", 1000),
            "AccountIds": ("AccountId", 1000),
            "Numbers": ("Number", 1000),
            "AssignedResourceIds": ("AssignedResourceId", 1000),
            "PartnerCompanyIds": ("PartnerCompanyId", 100),
            "TravelAgencyIds": ("TravelAgencyId", 100),
        },
        {
            "CreatedUtc": "CreatedUtc",
            "UpdatedUtc": "UpdatedUtc",
            "ScheduledStartUtc": "ScheduledStartUtc",
            "ScheduledEndUtc": "ScheduledEndUtc",
            "ActualStartUtc": "ActualStartUtc",
            "ActualEndUtc": "ActualEndUtc",
        },
        keyed=lambda d: d.reservations,
        extra=_reservations_extra,
    ),
    "resources/getAll": ReadSpec(
        "Resources",
        lambda d: d.resources.values(),
        {
            "ResourceIds": ("Id", 1000),
            "Names": ("Name", 1000),
            "EnterpriseIds": ("EnterpriseId", 1000),
        },
        {"CreatedUtc": "CreatedUtc", "UpdatedUtc": "UpdatedUtc"},
        keyed=lambda d: d.resources,
        extra=_resources_extra,
        extras_in_response={
            "ResourceCategories": None,
            "ResourceCategoryAssignments": None,
            "ResourceCategoryImageAssignments": None,
            "ResourceFeatures": None,
            "ResourceFeatureAssignments": None,
        },
    ),
    "enterprises/getAll": ReadSpec(
        "Enterprises",
        lambda d: ({**e, "LinkedUtc": e["CreatedUtc"]} for e in d.enterprises),
        {"EnterpriseIds": ("Id", 1000), "ExternalIdentifiers": ("ExternalIdentifier", 1000)},
        {"UpdatedUtc": "UpdatedUtc", "LinkedUtc": "LinkedUtc"},
    ),
}
