"""Deterministic, realistic Mews data generated from a seed.

Records are plain dicts shaped exactly like the Connector API's (the fixtures' keys and
casing), so the server returns them as they are. The variety is what a hotel really has:
complete and sparse profiles, bad e-mails, OTA relay addresses, duplicates, unicode names,
merged and deleted profiles, reservations in every state, rooms in every state.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from shared.simulator import duplicates as planted

MATCHES_KEPT = 64  # filter sets whose matches are kept (a first load reads ~25 windows at once)

CUSTOMER_KEYS = [
    "Id",
    "ChainId",
    "Number",
    "Title",
    "Sex",
    "FirstName",
    "LastName",
    "SecondLastName",
    "NationalityCode",
    "PreferredLanguageCode",
    "LanguageCode",
    "BirthDate",
    "BirthCountryCode",
    "BirthCountrySubdivisionCode",
    "BirthPlace",
    "Occupation",
    "Email",
    "HasOtaEmail",
    "Phone",
    "TaxIdentificationNumber",
    "LoyaltyCode",
    "AccountingCode",
    "BillingCode",
    "Notes",
    "CarRegistrationNumber",
    "DietaryRequirements",
    "CreatedUtc",
    "UpdatedUtc",
    "Passport",
    "IdentityCard",
    "Visa",
    "DriversLicense",
    "Address",
    "AddressId",
    "Classifications",
    "Options",
    "ItalianDestinationCode",
    "ItalianFiscalCode",
    "ItalianLotteryCode",
    "CompanyId",
    "MergeTargetId",
    "ActivityState",
    "IsActive",
    "PreferredSpaceFeatures",
    "CreatorProfileId",
    "UpdaterProfileId",
]

RESERVATION_STATES = (
    "Inquired",
    "Confirmed",
    "Started",
    "Processed",
    "Canceled",
    "Optional",
    "Requested",
)
RESOURCE_STATES = ("Dirty", "Clean", "Inspected", "OutOfService", "OutOfOrder")
ENTERPRISE_NAMES = ("Simulated Grand Hotel", "Simulated City Lodge", "Simulated Seaside Resort")
INTEGRATION_PROFILE_ID = "9f9f00aa-0000-4000-8000-0000000000aa"
STAFF_PROFILE_ID = "9f9f0002-0000-4000-8000-000000000002"

# (first names, last names, nationality, language, phone prefix, sample national number)
_PEOPLE = (
    (
        ("Amelia", "Oliver", "Harry", "Isla"),
        ("Smith", "Jones", "Taylor", "Brown"),
        "GB",
        "en-GB",
        "+44",
        "20 7946 {:04d}",
    ),
    (
        ("Lukas", "Mia", "Jonas", "Lea"),
        ("Müller", "Schäfer", "Weiß", "Groß"),
        "DE",
        "de-DE",
        "+49",
        "30 9{:07d}",
    ),
    (
        ("Zoë", "Chloé", "Léa", "Théo"),
        ("Dubois", "Lefèvre", "Girard", "Rousseau"),
        "FR",
        "fr-FR",
        "+33",
        "1 4{:03d} {:04d}",
    ),
    (
        ("José", "María", "Lucía", "Álvaro"),
        ("García", "Martínez", "Núñez", "Peña"),
        "ES",
        "es-ES",
        "+34",
        "91 {:03d} {:04d}",
    ),
    (
        ("Łukasz", "Zofia", "Paweł", "Agnieszka"),
        ("Kowalski", "Wójcik", "Żak", "Dąbrowska"),
        "PL",
        "pl-PL",
        "+48",
        "22 {:03d} {:04d}",
    ),
    (
        ("Søren", "Ida", "Mads", "Freja"),
        ("Jørgensen", "Sørensen", "Møller", "Nielsen"),
        "DK",
        "da-DK",
        "+45",
        "32 {:02d} {:04d}",
    ),
    (
        ("Yuki", "Haruto", "Sakura", "Ren"),
        ("佐藤", "鈴木", "高橋", "田中"),
        "JP",
        "ja-JP",
        "+81",
        "3-{:04d}-{:04d}",
    ),
    (
        ("Γιώργος", "Μαρία", "Νίκος", "Ελένη"),
        ("Παπαδόπουλος", "Οικονόμου", "Γεωργίου", "Νικολάου"),
        "GR",
        "el-GR",
        "+30",
        "21 0{:03d} {:04d}",
    ),
    (
        ("Chiara", "Marco", "Giulia", "Luca"),
        ("Rossi", "Bianchi", "Esposito", "Romano"),
        "IT",
        "it-IT",
        "+39",
        "06 {:04d} {:04d}",
    ),
    (
        ("Emma", "Liam", "Ava", "Noah"),
        ("Johnson", "Williams", "Miller", "Davis"),
        "US",
        "en-US",
        "+1",
        "202-555-{:04d}",
    ),
)
_OTA_DOMAINS = ("guest.booking.example", "m.expedia.example", "relay.airbnb.example")
_BAD_EMAILS = ("{f}@@example.com", "{f}.example.com", "{f}@example", "{f} {l}@example.com")
_CITIES = {
    "GB": "London",
    "DE": "Berlin",
    "FR": "Paris",
    "ES": "Madrid",
    "PL": "Warszawa",
    "DK": "København",
    "JP": "東京",
    "GR": "Αθήνα",
    "IT": "Roma",
    "US": "Washington",
}


def fmt(moment: datetime) -> str:
    """Mews' canonical UTC form, ``YYYY-MM-DDThh:mm:ssZ``."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="seconds")[:19] + "Z"


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class SimData:
    """Everything the simulator serves, keyed by id."""

    chain_id: str
    chain_name: str
    integration_id: str
    now: datetime
    enterprises: list[dict[str, Any]] = field(default_factory=list)
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    addresses: dict[str, dict[str, Any]] = field(default_factory=dict)
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    companies: dict[str, dict[str, Any]] = field(default_factory=dict)
    reservations: dict[str, dict[str, Any]] = field(default_factory=dict)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted_utc: dict[str, str] = field(default_factory=dict)  # customer id → deletion time
    services: dict[str, str] = field(default_factory=dict)  # service id → enterprise id
    planted: list[dict[str, Any]] = field(default_factory=list)  # --duplicates: the truth
    version: int = 0  # bumped by every write: invalidates the time indexes
    _indexes: dict[tuple[str, str], tuple[int, list[str], list[dict[str, Any]]]] = field(
        default_factory=dict, repr=False
    )
    _matches: dict[str, tuple[int, list[dict[str, Any]], dict[str, int]]] = field(
        default_factory=dict, repr=False
    )

    def matches(
        self,
        name: str,
        filters: dict[str, Any],
        compute: Callable[[], tuple[list[dict[str, Any]], dict[str, int]]],
    ) -> tuple[list[dict[str, Any]], dict[str, int]]:
        """What a read's filters match, in page order, and each record's position (cached until
        the next write): the pages of one filter set, cursor after cursor, filter and sort
        once, not once a page (which made a window's pages cost its size squared)."""
        key = name + orjson.dumps(filters, option=orjson.OPT_SORT_KEYS).decode()
        cached = self._matches.get(key)
        if cached is not None and cached[0] == self.version:
            return cached[1], cached[2]
        matched, positions = compute()
        self._matches[key] = (self.version, matched, positions)
        while len(self._matches) > MATCHES_KEPT:
            self._matches.pop(next(iter(self._matches)), None)  # the oldest filter set
        return matched, positions

    def sorted_by(
        self, name: str, field_name: str, records: Iterable[dict[str, Any]]
    ) -> tuple[list[str], list[dict[str, Any]]]:
        """Records of a collection sorted by a timestamp field (cached until the next write),
        so a time-window read bisects instead of scanning everything."""
        cached = self._indexes.get((name, field_name))
        if cached is not None and cached[0] == self.version:
            return cached[1], cached[2]
        pairs = sorted(
            (
                (value[:19] + "Z", record)
                for record in records
                if isinstance(value := record.get(field_name), str)
            ),
            key=lambda pair: pair[0],
        )
        keys = [k for k, _ in pairs]
        ordered = [r for _, r in pairs]
        self._indexes[(name, field_name)] = (self.version, keys, ordered)
        return keys, ordered


class _Ids:
    """Deterministic UUIDs from the seeded generator."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def __call__(self) -> str:
        h = f"{self._rng.getrandbits(128):032x}"
        variant = "89ab"[int(h[16], 16) & 3]
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"


def generate(
    *,
    seed: int = 7,
    customers: int = 200,
    enterprises: int = 1,
    now: datetime | None = None,
    history_days: int = 730,
    chain_name: str = "Simulated Hotels",
    enterprise_names: Sequence[str] = ENTERPRISE_NAMES,
    duplicates: float = 0.0,
) -> SimData:
    """The simulator's data, one chain: same arguments, same data. Enterprises beyond the
    names given are called "<chain name> <n>". ``duplicates`` > 0 plants that share of people
    entered twice and as many look-alike pairs, with their truth (instead of the unlabelled
    copies)."""
    rng = random.Random(seed)
    new_id = _Ids(rng)
    now = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    data = SimData(new_id(), chain_name, new_id(), now)
    for index in range(max(1, enterprises)):
        name = (
            enterprise_names[index]
            if index < len(enterprise_names)
            else f"{chain_name} {index + 1}"
        )
        data.enterprises.append(_enterprise(data, index, new_id, now, history_days, name))
        data.services[new_id()] = data.enterprises[-1]["Id"]
    for index in range(6 + customers // 50):
        company = _company(data, index, rng, new_id, now, history_days)
        data.companies[company["Id"]] = company
    company_ids = list(data.companies)
    created_span = history_days * 86400
    for index in range(customers):
        created = now - timedelta(seconds=rng.randrange(created_span))
        customer = _customer(data, index, rng, new_id, created, now, company_ids)
        data.customers[customer["Id"]] = customer
    _duplicates_merges_and_deletions(data, rng, now, copies=duplicates <= 0)
    if duplicates > 0:
        template = next(iter(data.customers.values()))
        data.planted = planted.plant(
            data.customers, template, duplicates, seed * 7919 + 17, _Ids(random.Random(seed + 3))
        )
    for customer in list(data.customers.values()):
        if rng.random() < 0.6:
            address = _address(customer, rng, new_id)
            data.addresses[address["Id"]] = address
            customer["AddressId"] = address["Id"]
        if rng.random() < 0.35:
            document = _document(customer, rng, new_id, now)
            data.documents[document["Id"]] = document
    for enterprise in data.enterprises:
        for floor in range(1, 5):
            for room in range(1, 11):
                resource = _resource(enterprise, floor, room, rng, new_id, now)
                data.resources[resource["Id"]] = resource
    rooms = list(data.resources.values())
    service_of = {enterprise: service for service, enterprise in data.services.items()}
    customer_ids = list(data.customers)
    for _ in range(max(10, customers // 2)):
        reservation = _reservation(data, rng, new_id, now, customer_ids, rooms, company_ids)
        reservation["ServiceId"] = service_of[reservation["ServiceId"]]
        data.reservations[reservation["Id"]] = reservation
    return data


def portfolio_enterprise(data: SimData, seed: int, name: str) -> dict[str, Any]:
    """The dummy enterprise a portfolio token's ``configuration/get`` describes when no
    ``EnterpriseId`` is sent (``IsPortfolio: true``, docs/MEWS.md#portfolio)."""
    record = _enterprise(data, 0, _Ids(random.Random(seed)), data.now, 730, name)
    record.update(ShortName="PORTFOLIO", IsPortfolio=True)
    return record


def _enterprise(
    data: SimData, index: int, new_id: _Ids, now: datetime, days: int, name: str
) -> dict[str, Any]:
    enterprise_id = new_id()
    address_id = new_id()
    return {
        "Id": enterprise_id,
        "ExternalIdentifier": None,
        "HoldingKey": None,
        "ChainId": data.chain_id,
        "ChainName": data.chain_name,
        "CreatedUtc": fmt(now - timedelta(days=days + 30 * (index + 1))),
        "UpdatedUtc": fmt(now - timedelta(days=10)),
        "Name": name,
        "ShortName": f"SIM{index + 1}",
        "TimeZoneIdentifier": "Europe/London",
        "LegalEnvironmentCode": "UK",
        "AccommodationEnvironmentCode": "UK",
        "AccountingEnvironmentCode": "UK",
        "TaxEnvironmentCode": "UK",
        "DefaultLanguageCode": "en-GB",
        "EditableHistoryInterval": "P0M7DT0H0M0S",
        "AccountingEditableHistoryInterval": "P0M7DT0H0M0S",
        "OperationalEditableHistoryInterval": "P0M5DT0H0M0S",
        "BusinessDayClosingOffset": None,
        "WebsiteUrl": "https://hotel.example",
        "Email": "reception@hotel.example",
        "Phone": "+44 20 7946 0000",
        "LogoImageId": None,
        "CoverImageId": None,
        "Pricing": "Gross",
        "TaxPrecision": None,
        "AddressId": address_id,
        "Address": {
            "Id": address_id,
            "Line1": f"{index + 1} Simulation Square",
            "Line2": None,
            "City": "London",
            "PostalCode": "EC1A 1AA",
            "CountryCode": "GB",
            "CountrySubdivisionCode": "GB-ENG",
            "Latitude": 51.5,
            "Longitude": -0.12,
        },
        "GroupNames": [data.chain_name],
        "Subscription": {"TaxIdentifier": None},
        "Currencies": [{"Currency": "GBP", "IsDefault": True, "IsEnabled": True}],
        "AccountingConfiguration": None,
        "IsPortfolio": False,
    }


def _customer(
    data: SimData,
    index: int,
    rng: random.Random,
    new_id: _Ids,
    created: datetime,
    now: datetime,
    company_ids: list[str],
) -> dict[str, Any]:
    firsts, lasts, nationality, language, prefix, pattern = rng.choice(_PEOPLE)
    first, last = rng.choice(firsts), rng.choice(lasts)
    completeness = rng.random()  # 0 = sparse, 1 = complete

    def has(threshold: float) -> bool:
        return completeness > threshold

    ascii_first = first.encode("ascii", "ignore").decode().lower() or f"guest{index}"
    ascii_last = last.encode("ascii", "ignore").decode().lower() or "x"
    email: str | None = None
    ota = False
    if has(0.15):
        roll = rng.random()
        if roll < 0.12:
            email, ota = f"{rng.getrandbits(40):x}@{rng.choice(_OTA_DOMAINS)}", True
        elif roll < 0.18:
            email = rng.choice(_BAD_EMAILS).format(f=ascii_first, l=ascii_last)
        else:
            email = f"{ascii_first}.{ascii_last}{index}@example.com"
    phone = None
    if has(0.3):
        widths = [int(w) for w in re.findall(r"\{:0(\d)d\}", pattern)]
        national = pattern.format(*(rng.randrange(10**w) for w in widths))
        phone = rng.choice((f"{prefix} {national}", f"0{national}", national.replace(" ", "")))
    updated = created + timedelta(
        seconds=rng.randrange(max(1, int((now - created).total_seconds())))
    )
    return {
        "Id": new_id(),
        "ChainId": data.chain_id,
        "Number": str(100000 + index),
        "Title": rng.choice((None, "Mister", "Miss", "Misses")) if has(0.4) else None,
        "Sex": rng.choice(("Male", "Female")) if has(0.5) else None,
        "FirstName": first if has(0.05) else None,
        "LastName": last,
        "SecondLastName": None,
        "NationalityCode": nationality if has(0.35) else None,
        "PreferredLanguageCode": language if has(0.45) else None,
        "LanguageCode": language if has(0.25) else None,
        "BirthDate": f"{rng.randrange(1940, 2006)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
        if has(0.5)
        else None,
        "BirthCountryCode": nationality if has(0.8) else None,
        "BirthCountrySubdivisionCode": None,
        "BirthPlace": _CITIES[nationality] if has(0.8) else None,
        "Occupation": rng.choice(("Engineer", "Teacher", "Chef", "Nurse")) if has(0.85) else None,
        "Email": email,
        "HasOtaEmail": ota,
        "Phone": phone,
        "TaxIdentificationNumber": None,
        "LoyaltyCode": f"SIM-{index:06d}" if has(0.7) else None,
        "AccountingCode": None,
        "BillingCode": None,
        "Notes": "",
        "CarRegistrationNumber": None,
        "DietaryRequirements": rng.choice((None, "Vegetarian", "Vegan", "Gluten-free")),
        "CreatedUtc": fmt(created),
        "UpdatedUtc": fmt(updated),
        "Passport": None,
        "IdentityCard": None,
        "Visa": None,
        "DriversLicense": None,
        "Address": None,
        "AddressId": None,
        "Classifications": rng.sample(
            ("Returning", "VeryImportant", "LoyaltyProgram", "Important"), k=rng.randrange(0, 3)
        ),
        "Options": ["SendMarketingEmails"] if has(0.6) else [],
        "ItalianDestinationCode": None,
        "ItalianFiscalCode": None,
        "ItalianLotteryCode": None,
        "CompanyId": rng.choice(company_ids) if rng.random() < 0.1 else None,
        "MergeTargetId": None,
        "ActivityState": "Active",
        "IsActive": True,
        "PreferredSpaceFeatures": ["HighFloor"] if rng.random() < 0.1 else [],
        "CreatorProfileId": STAFF_PROFILE_ID,
        "UpdaterProfileId": STAFF_PROFILE_ID,
    }


def _duplicates_merges_and_deletions(
    data: SimData, rng: random.Random, now: datetime, *, copies: bool = True
) -> None:
    """About 2 % duplicates (same e-mail, same phone, or same name and birth date; without
    ``copies`` the draws are made and nothing copied), 0.5 % merged into another profile, 0.5 %
    deleted."""
    customers = list(data.customers.values())
    if len(customers) < 4:
        return
    for _ in range(max(1, len(customers) // 50)):
        original, copy = rng.sample(customers, 2)
        kind = rng.randrange(3)
        if not copies:
            continue
        if kind == 0 and original["Email"]:
            copy["Email"] = original["Email"].upper()
        elif kind == 1 and original["Phone"]:
            copy["Phone"] = original["Phone"]
        else:
            copy["FirstName"], copy["LastName"] = original["FirstName"], original["LastName"]
            copy["BirthDate"] = original["BirthDate"] or "1980-01-01"
            original["BirthDate"] = copy["BirthDate"]
    for _ in range(max(1, len(customers) // 200)):
        source, target = rng.sample(customers, 2)
        if target["MergeTargetId"] or source is target:
            continue
        source.update(
            IsActive=False,
            ActivityState="Deleted",
            MergeTargetId=target["Id"],
            UpdatedUtc=fmt(max(parse(source["UpdatedUtc"]), now - timedelta(days=1))),
        )
        data.deleted_utc[source["Id"]] = source["UpdatedUtc"]
    for _ in range(max(1, len(customers) // 200)):
        victim = rng.choice(customers)
        if victim["IsActive"]:
            victim.update(IsActive=False, ActivityState="Deleted")
            data.deleted_utc[victim["Id"]] = victim["UpdatedUtc"]


def _address(customer: dict[str, Any], rng: random.Random, new_id: _Ids) -> dict[str, Any]:
    country = customer["NationalityCode"] or "GB"
    return {
        "Id": new_id(),
        "AccountId": customer["Id"],
        "ChainId": customer["ChainId"],
        "AccountType": "Customer",
        "Line1": f"{rng.randrange(1, 200)} Example Street",
        "Line2": None,
        "City": _CITIES.get(country, "London"),
        "PostalCode": f"{rng.randrange(10000, 99999)}" if rng.random() < 0.9 else None,
        "CountryCode": country if rng.random() < 0.9 else None,
        "CountrySubdivisionCode": None,
        "Latitude": None,
        "Longitude": None,
        "UpdatedUtc": customer["UpdatedUtc"],
        "IsActive": True,
    }


def _document(
    customer: dict[str, Any], rng: random.Random, new_id: _Ids, now: datetime
) -> dict[str, Any]:
    expires = now + timedelta(days=rng.randrange(-200, 3000))
    return {
        "Id": new_id(),
        "CustomerId": customer["Id"],
        "Type": rng.choice(("Passport", "IdentityCard", "DriversLicense")),
        "Number": f"SIM{rng.randrange(10**7):07d}",
        "ExpirationDate": expires.strftime("%Y-%m-%dT00:00:00Z"),
        "IssuanceDate": None,
        "IssuingCountryCode": customer["NationalityCode"],
        "IssuingCountrySubdivisionCode": None,
        "IssuingCity": None,
        "IdentityDocumentSupportNumber": None,
        "IsVerified": rng.random() < 0.5,
    }


def _company(
    data: SimData, index: int, rng: random.Random, new_id: _Ids, now: datetime, days: int
) -> dict[str, Any]:
    created = now - timedelta(seconds=rng.randrange(days * 86400))
    contact = rng.choice(("Wendy Widget", "Pat Placeholder", None))
    company: dict[str, Any] = {
        "Id": new_id(),
        "ChainId": data.chain_id,
        "Name": f"Simulated Company {index + 1} Ltd",
        "IsActive": rng.random() > 0.1,
        "Number": 1000 + index,
        "Identifier": None,
        "TaxIdentifier": f"GB{rng.randrange(10**9):09d}",
        "AdditionalTaxIdentifier": None,
        "ElectronicInvoiceIdentifier": None,
        "InvoiceDueInterval": "P14D",
        "AccountingCode": None,
        "MotherCompanyId": None,
        "CreatedUtc": fmt(created),
        "UpdatedUtc": fmt(created),
        "AddressId": None,
        "BillingCode": None,
        "Iata": None,
        "Telephone": None,
        "InvoicingEmail": f"invoices{index}@company.example",
        "Contact": None,
        "Notes": None,
        "Options": {
            "Invoiceable": True,
            "AddFeesToInvoices": False,
            "AddTaxDeductedPaymentToInvoices": False,
        },
        "Department": None,
        "DunsNumber": None,
        "CreditRating": {"Basic": "CreditOk"},
        "ReferenceIdentifier": None,
        "WebsiteUrl": None,
        "ExternalIdentifier": None,
        "MergeTargetId": None,
    }
    # Mews documents ContactPerson; its examples spell it ContacPerson: serve both variants
    spelling = index % 3
    if spelling in (0, 1):
        company["ContactPerson"] = contact
    if spelling in (0, 2):
        company["ContacPerson"] = contact
    return company


def _resource(
    enterprise: dict[str, Any],
    floor: int,
    room: int,
    rng: random.Random,
    new_id: _Ids,
    now: datetime,
) -> dict[str, Any]:
    name = f"{floor}{room:02d}"
    return {
        "Id": new_id(),
        "EnterpriseId": enterprise["Id"],
        "IsActive": True,
        "ParentResourceId": None,
        "Name": name,
        "State": RESOURCE_STATES[(floor * 10 + room) % 5],
        "Descriptions": {"en-GB": f"Room {name}"},
        "CreatedUtc": enterprise["CreatedUtc"],
        "UpdatedUtc": fmt(now - timedelta(hours=rng.randrange(1, 2000))),
        "Data": {
            "Discriminator": "Space",
            "Value": {"FloorNumber": str(floor), "LocationNotes": None},
        },
        "ExternalNames": {"en-GB": f"Room {name}"},
        "Directions": {"en-GB": f"Floor {floor}."},
    }


def _reservation(
    data: SimData,
    rng: random.Random,
    new_id: _Ids,
    now: datetime,
    customer_ids: list[str],
    rooms: list[dict[str, Any]],
    company_ids: list[str],
) -> dict[str, Any]:
    room = rng.choice(rooms)
    start = (now + timedelta(days=rng.randrange(-400, 60))).replace(hour=14, minute=0)
    nights = rng.randrange(1, 8)
    end = (start + timedelta(days=nights)).replace(hour=10)
    created = start - timedelta(days=rng.randrange(1, 120))
    created = min(created, now - timedelta(minutes=5))
    if end < now:
        state = rng.choice(("Processed", "Processed", "Processed", "Canceled"))
    elif start < now:
        state = "Started"
    else:
        state = rng.choice(
            ("Confirmed", "Confirmed", "Confirmed", "Inquired", "Optional", "Requested", "Canceled")
        )
    started = state in ("Started", "Processed")
    updated = min(now, max(created, start if started else created) + timedelta(hours=1))
    return {
        # ServiceId: the room's enterprise for now; generate() swaps in that enterprise's service
        "Id": new_id(),
        "ServiceId": room["EnterpriseId"],
        "AccountId": rng.choice(customer_ids),
        "AccountType": "Customer",
        "CreatorProfileId": STAFF_PROFILE_ID,
        "UpdaterProfileId": STAFF_PROFILE_ID,
        "BookerId": None,
        "Number": str(rng.randrange(10**5, 10**6)),
        "State": state,
        "Origin": rng.choice(("Distributor", "ChannelManager", "Commander")),
        "CommanderOrigin": None,
        "OriginDetails": None,
        "CreatedUtc": fmt(created),
        "UpdatedUtc": fmt(updated),
        "CancelledUtc": fmt(updated) if state == "Canceled" else None,
        "VoucherId": None,
        "BusinessSegmentId": None,
        "Options": {
            "OwnerCheckedIn": started,
            "AllCompanionsCheckedIn": started,
            "AnyCompanionCheckedIn": started,
            "ConnectorCheckIn": False,
        },
        "RateId": data.integration_id,
        "CreditCardId": None,
        "GroupId": new_id(),
        "RequestedResourceCategoryId": room["EnterpriseId"],
        "AssignedResourceId": room["Id"],
        "AvailabilityBlockId": None,
        "PartnerCompanyId": rng.choice(company_ids) if rng.random() < 0.1 else None,
        "TravelAgencyId": None,
        "AssignedResourceLocked": False,
        "ChannelNumber": None,
        "ChannelManagerNumber": None,
        "CancellationReason": "RequestedByGuest" if state == "Canceled" else None,
        "ReleasedUtc": None,
        "StartUtc": fmt(start),
        "EndUtc": fmt(end),
        "ScheduledStartUtc": fmt(start),
        "ActualStartUtc": fmt(start) if started else None,
        "ScheduledEndUtc": fmt(end),
        "ActualEndUtc": fmt(end) if state == "Processed" else None,
        "Purpose": rng.choice(("Leisure", "Business", None)),
        "QrCodeData": None,
        "PersonCounts": [{"AgeCategoryId": data.integration_id, "Count": rng.randrange(1, 3)}],
    }
