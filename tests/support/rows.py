"""Hand-built guests for tests of the database API: the Mews record and the row the database
derives from it."""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from pydantic.alias_generators import to_pascal

CHAIN_ID = "6f1a3b5e-0000-4000-8000-00000000c4a1"
ENTERPRISE_ID = "6f1a3b5e-0000-4000-8000-0000000e0001"
OTHER_CHAIN_ID = "6f1a3b5e-0000-4000-8000-00000000c4a2"
OTHER_ENTERPRISE_ID = "6f1a3b5e-0000-4000-8000-0000000e0002"


def guest_row(
    mews_id: str | None = None,
    *,
    updated: str = "2026-01-01T10:00:00Z",
    chain_id: str = CHAIN_ID,
    **fields: Any,
) -> dict[str, Any]:
    """A guest: the typed columns the database derives, and under ``raw`` the Mews customer
    they are derived from (each field as Mews names it: ``first_name`` is ``FirstName``)."""
    mews_id = mews_id or str(uuid.uuid4())
    last_name = fields.pop("last_name", "Novák")
    raw = {"Id": mews_id, "ChainId": chain_id, "LastName": last_name, "UpdatedUtc": updated}
    raw.update({to_pascal(name): value for name, value in fields.items()})
    return {
        "chain_id": chain_id,
        "mews_id": mews_id,
        "last_name": last_name,
        "has_ota_email": False,
        "classifications": [],
        "options": [],
        "preferred_space_features": [],
        "is_active": True,
        "mews_updated_utc": updated,
        "raw": raw,
        **fields,
    }


def store_guests(conn: psycopg.Connection, rows: list[dict[str, Any]]) -> None:
    """Write the guests' records through the guarded upsert, one call per chain."""
    by_chain: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_chain[row["chain_id"]].append(row["raw"])
    for chain_id, records in by_chain.items():
        conn.execute("select public.upsert_guests(%s, %s)", (chain_id, Jsonb(records)))
