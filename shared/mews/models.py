"""Pydantic models of the Mews objects we read, lenient where Mews is.

Field names are the Python spelling of the Mews names (``UpdatedUtc`` → ``updated_utc``); the
Mews names are the aliases. Unknown fields are ignored; every documented enum is open (kept as
the raw string); optional fields may be null or absent; timestamps parse with or without
fractional seconds; ``BirthDate`` is a date whether Mews sends a date or a midnight date-time;
the company contact person is read from ``ContactPerson`` or the documented typo
``ContacPerson``.

Strict where the database is: every id we store in a ``uuid`` column (``Id``, ``ChainId``,
``CompanyId``, ``EnterpriseId``, ``AccountId``, ...) must be a UUID in its canonical form, and a
mirrored record may hold no NUL character (U+0000) anywhere, key or value, as PostgreSQL text and
jsonb cannot store it. A record that fails is rejected with the reason (and quarantined), so it
never reaches the database to fail the page it came in.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

import orjson
from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)
from pydantic.alias_generators import to_pascal

from shared.jsonnul import find_nul

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
NUL_REASON = "a NUL character (U+0000), which PostgreSQL cannot store,"


def _date_or_datetime(value: Any) -> Any:
    """``"1984-03-14"`` and ``"1984-03-14T00:00:00Z"`` both mean 14 March 1984."""
    if isinstance(value, str) and "T" in value:
        return value.split("T", 1)[0]
    return value


def _none_as_empty(value: Any) -> Any:
    return [] if value is None else value


def _uuid(value: str) -> str:
    """The canonical 8-4-4-4-12 hex form Mews sends and a ``uuid`` column takes."""
    if _UUID.fullmatch(value) is None:
        raise ValueError("not a UUID")
    return value


def nul_at(value: Any) -> str | None:
    """Where the first NUL character is in a JSON value (``at $.LastName``), or None. The
    encoder finds that there is one quickly; the walk says where only then."""
    try:
        if b"\\u0000" not in orjson.dumps(value):
            return None
    except TypeError:
        pass  # not plain JSON data: walk it
    return find_nul(value)


MewsDate = Annotated[date, BeforeValidator(_date_or_datetime)]
OpenEnumList = Annotated[list[str], BeforeValidator(_none_as_empty)]
MewsId = Annotated[str, AfterValidator(_uuid)]


class MewsModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_pascal, populate_by_name=True, extra="ignore", frozen=True
    )


NUL_FREE = "nul_free"  # validation context: the caller checked the whole page for NUL already


class MewsRecord(MewsModel):
    """A record we mirror, raw JSON included: no NUL character anywhere in it. A page known to
    hold none (``context={NUL_FREE: True}``, one check for the page) skips the check per record."""

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any, info: ValidationInfo) -> Any:
        if info.context and info.context.get(NUL_FREE):
            return data
        where = nul_at(data)
        if where is not None:
            raise ValueError(f"{NUL_REASON} {where}")
        return data


class Address(MewsRecord):
    """An account address (``addresses/getAll``) or the deprecated embedded one."""

    id: MewsId
    account_id: MewsId | None = None
    chain_id: MewsId | None = None
    account_type: str | None = None
    line1: str | None = Field(default=None, alias="Line1")
    line2: str | None = Field(default=None, alias="Line2")
    city: str | None = None
    postal_code: str | None = None
    country_code: str | None = None
    country_subdivision_code: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    updated_utc: datetime | None = None
    is_active: bool = True


class Customer(MewsRecord):
    id: MewsId
    chain_id: MewsId
    number: str | None = None
    title: str | None = None
    sex: str | None = None
    first_name: str | None = None
    last_name: str
    second_last_name: str | None = None
    nationality_code: str | None = None
    preferred_language_code: str | None = None
    language_code: str | None = None
    birth_date: MewsDate | None = None
    birth_country_code: str | None = None
    birth_place: str | None = None
    occupation: str | None = None
    email: str | None = None
    has_ota_email: bool = False
    phone: str | None = None
    tax_identification_number: str | None = None
    loyalty_code: str | None = None
    notes: str | None = None
    car_registration_number: str | None = None
    dietary_requirements: str | None = None
    created_utc: datetime | None = None
    updated_utc: datetime
    address_id: MewsId | None = None
    classifications: OpenEnumList = []
    options: OpenEnumList = []
    preferred_space_features: OpenEnumList = []
    company_id: MewsId | None = None
    merge_target_id: MewsId | None = None
    is_active: bool = True
    creator_profile_id: MewsId | None = None
    updater_profile_id: MewsId | None = None


class IdentityDocument(MewsRecord):
    id: MewsId
    customer_id: MewsId
    type: str
    number: str = ""
    expiration_date: MewsDate | None = None
    issuance_date: MewsDate | None = None
    issuing_country_code: str | None = None
    issuing_country_subdivision_code: str | None = None
    issuing_city: str | None = None
    is_verified: bool = False


class Company(MewsRecord):
    id: MewsId
    chain_id: MewsId
    name: str
    is_active: bool = True
    number: int | None = None
    identifier: str | None = None
    tax_identifier: str | None = None
    invoicing_email: str | None = None
    telephone: str | None = None
    contact_person: str | None = Field(
        default=None, validation_alias=AliasChoices("ContactPerson", "ContacPerson")
    )
    mother_company_id: MewsId | None = None
    merge_target_id: MewsId | None = None
    created_utc: datetime | None = None
    updated_utc: datetime | None = None


class Reservation(MewsRecord):
    id: MewsId
    service_id: MewsId
    account_id: MewsId
    account_type: str
    number: str
    state: str
    origin: str | None = None
    created_utc: datetime
    updated_utc: datetime
    cancelled_utc: datetime | None = None
    scheduled_start_utc: datetime
    scheduled_end_utc: datetime
    actual_start_utc: datetime | None = None
    actual_end_utc: datetime | None = None
    assigned_resource_id: MewsId | None = None
    partner_company_id: MewsId | None = None
    travel_agency_id: MewsId | None = None
    booker_id: MewsId | None = None
    purpose: str | None = None
    updater_profile_id: str | None = None


class Resource(MewsRecord):
    id: MewsId
    enterprise_id: MewsId
    is_active: bool = True
    parent_resource_id: MewsId | None = None
    name: str
    state: str
    created_utc: datetime | None = None
    updated_utc: datetime


class Enterprise(MewsModel):
    id: str
    chain_id: str
    chain_name: str | None = None
    name: str
    created_utc: datetime
    updated_utc: datetime | None = None
    time_zone_identifier: str = "UTC"
    default_language_code: str | None = None
    is_portfolio: bool = False
    address: Address | None = None


class Configuration(MewsModel):
    now_utc: datetime
    enterprise: Enterprise
    is_identity_document_number_required: bool = True


class ErrorBody(MewsModel):
    message: str = ""
    request_id: str | None = None
    details: str | None = None
