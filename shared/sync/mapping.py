"""Mews records → mirror rows (pure): the rows API's mapping.

Each row carries the typed columns, the Mews ``UpdatedUtc`` as ``mews_updated_utc`` (the order
clock of the guarded upsert) and the raw JSON exactly as Mews sent it.

The sync engine does not send rows: it sends the records as Mews sent them, and the database
derives the same columns (``app.<table>_from_records``, migration 20261126020100), which halves
what travels and what the database parses. These functions are that derivation in Python, for
the rows API (``upsert_<table>(p_rows)``); tests/sync/test_engine_records.py holds the two equal.
"""

from __future__ import annotations

from typing import Any

from shared.mews.models import Address, Company, Customer, IdentityDocument, Reservation, Resource


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def guest_row(customer: Customer, raw: dict[str, Any]) -> dict[str, Any]:
    c = customer
    return {
        "chain_id": c.chain_id,
        "mews_id": c.id,
        "number": c.number,
        "title": c.title,
        "sex": c.sex,
        "first_name": c.first_name,
        "last_name": c.last_name,
        "second_last_name": c.second_last_name,
        "nationality_code": c.nationality_code,
        "preferred_language_code": c.preferred_language_code,
        "language_code": c.language_code,
        "birth_date": _iso(c.birth_date),
        "birth_place": c.birth_place,
        "birth_country_code": c.birth_country_code,
        "occupation": c.occupation,
        "email": c.email,
        "has_ota_email": c.has_ota_email,
        "phone": c.phone,
        "loyalty_code": c.loyalty_code,
        "tax_identification_number": c.tax_identification_number,
        "notes": c.notes,
        "car_registration_number": c.car_registration_number,
        "dietary_requirements": c.dietary_requirements,
        "company_id": c.company_id,
        "address_id": c.address_id,
        "classifications": c.classifications,
        "options": c.options,
        "preferred_space_features": c.preferred_space_features,
        "merge_target_id": c.merge_target_id,
        "is_active": c.is_active,
        "creator_profile_id": c.creator_profile_id,
        "updater_profile_id": c.updater_profile_id,
        "mews_created_utc": _iso(c.created_utc),
        "mews_updated_utc": _iso(c.updated_utc),
        "raw": raw,
    }


def address_row(address: Address, raw: dict[str, Any], chain_id: str) -> dict[str, Any] | None:
    """Guest addresses only (company addresses are not mirrored yet)."""
    a = address
    if a.account_type not in (None, "Customer") or a.account_id is None:
        return None
    return {
        "chain_id": a.chain_id or chain_id,
        "mews_id": a.id,
        "guest_mews_id": a.account_id,
        "line1": a.line1,
        "line2": a.line2,
        "city": a.city,
        "postal_code": a.postal_code,
        "country_code": a.country_code,
        "country_subdivision_code": a.country_subdivision_code,
        "is_active": a.is_active,
        "mews_updated_utc": _iso(a.updated_utc),
        "raw": raw,
    }


def document_row(document: IdentityDocument, raw: dict[str, Any], chain_id: str) -> dict[str, Any]:
    d = document
    return {
        "chain_id": chain_id,
        "mews_id": d.id,
        "guest_mews_id": d.customer_id,
        "type": d.type,
        "number": d.number,
        "expiration_date": _iso(d.expiration_date),
        "issuance_date": _iso(d.issuance_date),
        "issuing_country_code": d.issuing_country_code,
        "is_verified": d.is_verified,
        "mews_updated_utc": None,
        "raw": raw,
    }


def vendor_row(company: Company, raw: dict[str, Any]) -> dict[str, Any]:
    c = company
    return {
        "chain_id": c.chain_id,
        "mews_id": c.id,
        "name": c.name,
        "number": c.number,
        "is_active": c.is_active,
        "mother_company_id": c.mother_company_id,
        "invoicing_email": c.invoicing_email,
        "telephone": c.telephone,
        "contact_person": c.contact_person,
        "tax_identifier": c.tax_identifier,
        "iata": raw.get("Iata"),
        "merge_target_id": c.merge_target_id,
        "mews_created_utc": _iso(c.created_utc),
        "mews_updated_utc": _iso(c.updated_utc),
        "raw": raw,
    }


def reservation_row(
    reservation: Reservation, raw: dict[str, Any], enterprise_id: str
) -> dict[str, Any]:
    r = reservation
    counts = raw.get("PersonCounts") or []
    return {
        "enterprise_id": enterprise_id,
        "mews_id": r.id,
        "service_id": r.service_id,
        "account_id": r.account_id,
        "account_type": r.account_type,
        "booker_id": r.booker_id,
        "number": r.number,
        "state": r.state,
        "origin": r.origin,
        "purpose": r.purpose,
        "scheduled_start_utc": _iso(r.scheduled_start_utc),
        "scheduled_end_utc": _iso(r.scheduled_end_utc),
        "actual_start_utc": _iso(r.actual_start_utc),
        "actual_end_utc": _iso(r.actual_end_utc),
        "cancelled_utc": _iso(r.cancelled_utc),
        "assigned_resource_id": r.assigned_resource_id,
        "partner_company_id": r.partner_company_id,
        "travel_agency_id": r.travel_agency_id,
        "person_count": sum(int(c.get("Count") or 0) for c in counts if isinstance(c, dict)),
        "mews_created_utc": _iso(r.created_utc),
        "mews_updated_utc": _iso(r.updated_utc),
        "raw": raw,
    }


def resource_row(resource: Resource, raw: dict[str, Any]) -> dict[str, Any]:
    r = resource
    data = raw.get("Data") or {}
    value = data.get("Value") if isinstance(data, dict) else None
    return {
        "enterprise_id": r.enterprise_id,
        "mews_id": r.id,
        "name": r.name,
        "state": r.state,
        "is_active": r.is_active,
        "parent_resource_id": r.parent_resource_id,
        "floor_number": value.get("FloorNumber") if isinstance(value, dict) else None,
        "mews_created_utc": _iso(r.created_utc),
        "mews_updated_utc": _iso(r.updated_utc),
        "raw": raw,
    }
