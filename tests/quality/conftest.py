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


def insert_many(
    conn: psycopg.Connection, count: int, *, chain_id: str = CHAIN_ID, offset: int = 0
) -> None:
    """``count`` guests of varied completeness with current facts, set-based (no ANALYZE);
    phones and some e-mails shared by a few guests each (duplicate suggestions)."""
    conn.execute(
        """insert into public.guests (chain_id, mews_id, first_name, last_name, email, has_ota_email, phone,
             birth_date, nationality_code, preferred_language_code, title, mews_updated_utc, raw, raw_hash, synced_at)
           select %(chain)s::uuid, md5(%(chain)s::text || i)::uuid,
             case when i %% 10 <> 0 then 'First' || i end, 'Last' || i,
             case when i %% 4 <> 0 then case when i %% 11 = 0 then 'shared' || i %% (%(n)s::integer / 55 + 1) else 'guest' || i end || '@example.com' end,
             i %% 25 = 0,
             case when i %% 3 <> 0 then '+4420794' || lpad((i %% (%(n)s::integer / 7 + 1))::text, 5, '0') end,
             case when i %% 2 = 0 then date '1950-01-01' + (i %% 18000) end,
             case when i %% 5 <> 0 then 'GB' end, case when i %% 6 <> 0 then 'en-GB' end,
             case when i %% 7 = 0 then 'Mister' end, now() - interval '1 hour', '{}'::jsonb, md5(i::text),
             now() - interval '1 hour'
           from generate_series(%(offset)s::integer + 1, %(offset)s::integer + %(n)s::integer) i""",
        {"chain": chain_id, "n": count, "offset": offset},
    )
    conn.execute(
        """insert into public.guest_facts (chain_id, guest_mews_id, email_normalized, email_valid, phone_e164,
             phone_valid, has_address, has_document, name_key, source_synced_at)
           select g.chain_id, g.mews_id, lower(g.email), g.email is null or length(g.email) %% 9 <> 0,
             g.phone, case when g.phone is not null then right(g.phone, 1) <> '3' end,
             hashtext(g.mews_id::text) %% 8 <> 0, hashtext(g.mews_id::text) %% 3 = 0,
             case when g.birth_date is not null and g.first_name is not null
                  then lower(btrim(g.first_name)) || ' ' || lower(btrim(g.last_name)) || ' ' || g.birth_date end,
             g.synced_at
           from public.guests g
           where g.chain_id = %(chain)s
             and not exists (select 1 from public.guest_facts f where f.chain_id = g.chain_id and f.guest_mews_id = g.mews_id)""",
        {"chain": chain_id},
    )


def scores(conn: psycopg.Connection, enterprise_id: str) -> dict[str, tuple[int, list[int]]]:
    """Every score of an enterprise: guest -> (score, failed rule ids)."""
    return {
        str(guest): (score, list(failed))
        for guest, score, failed in conn.execute(
            "select guest_mews_id, score, failed_rules from public.guest_scores where enterprise_id = %s",
            (enterprise_id,),
        )
    }
