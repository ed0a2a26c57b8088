"""Guests with facts in a real database, for the SQL scorer."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg

from tests.support.rows import CHAIN_ID


def insert_profile(
    conn: psycopg.Connection, profile: dict[str, Any], *, chain_id: str = CHAIN_ID
) -> str:
    """A guest whose scored profile is exactly ``profile`` (shared/quality/scoring.py names)."""
    guest_id = str(uuid.uuid4())
    raw = {"Id": guest_id, "LastName": profile["last_name"]}
    conn.execute(
        """insert into public.guests (chain_id, mews_id, first_name, last_name, email, has_ota_email, phone,
             birth_date, nationality_code, preferred_language_code, title, sex, loyalty_code, company_id,
             mews_updated_utc, raw, raw_hash)
           values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now(), %s, md5(%s))""",
        (
            chain_id,
            guest_id,
            profile.get("first_name"),
            profile["last_name"],
            profile.get("email"),
            bool(profile.get("email_ota")),
            profile.get("phone"),
            profile.get("birth_date"),
            profile.get("nationality_code"),
            profile.get("language"),
            profile.get("title"),
            profile.get("sex"),
            profile.get("loyalty_code"),
            profile.get("company"),
            json.dumps(raw),
            json.dumps(raw),
        ),
    )
    conn.execute(
        """insert into public.guest_facts (chain_id, guest_mews_id, email_valid, phone_valid, has_address, has_document)
           values (%s, %s, %s, %s, %s, %s)""",
        (
            chain_id,
            guest_id,
            profile.get("email_valid"),
            profile.get("phone_valid"),
            bool(profile.get("address")),
            bool(profile.get("identity_document")),
        ),
    )
    return guest_id


def enable_rules(conn: psycopg.Connection, enterprise_id: str, rules: list[dict[str, Any]]) -> str:
    (result,) = conn.execute(
        "select public.quality_ensure_rule_set(%s, %s::jsonb)", (enterprise_id, json.dumps(rules))
    ).fetchone()  # type: ignore[misc]
    return str(result["id"])
