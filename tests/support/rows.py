"""Hand-built database rows for tests of the database API."""

from __future__ import annotations

import uuid
from typing import Any

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
    """A guests row as the sync engine sends it: typed columns plus the raw Mews JSON."""
    mews_id = mews_id or str(uuid.uuid4())
    last_name = fields.pop("last_name", "Novák")
    # the raw JSON carries every field, as Mews' does: typed columns are derived from it
    raw = {"Id": mews_id, "ChainId": chain_id, "LastName": last_name, "UpdatedUtc": updated}
    raw.update(fields)
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
