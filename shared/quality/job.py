"""The score job: enrich what changed, find duplicates, rescore set-based, snapshot.

Python does what needs libraries (e-mail and phone normalisation) for the guests whose mirror
row changed since their facts were computed; everything else is set-based SQL.
"""

from __future__ import annotations

import asyncio
from typing import Any

from shared.db.store import Store
from shared.logs import get_logger
from shared.quality import normalize
from shared.quality.rules import DEFAULT_RULES, Rule
from shared.sync.runs import Run

log = get_logger(__name__)


def facts_for(guest: dict[str, Any]) -> dict[str, Any]:
    """Normalised e-mail and phone of one guest (pure)."""
    email = normalize.email(guest.get("email"))
    regions = (
        normalize.country(guest.get("nationality_code")),
        normalize.country(guest.get("address_country")),
    )
    phone = normalize.phone(guest.get("phone"), regions)
    return {
        "guest_mews_id": guest["guest_mews_id"],
        "email_normalized": email.value,
        "email_valid": email.valid,
        "phone_e164": phone.value,
        "phone_valid": phone.valid,
        "synced_at": guest["synced_at"],
    }


async def enrich_chain(store: Store, chain_id: str, *, batch: int = 1000) -> int:
    done = 0
    while True:
        pending = await store.call("quality_facts_pending", p_chain_id=chain_id, p_limit=batch)
        if not pending:
            return done
        await store.call(
            "quality_facts_put", p_chain_id=chain_id, p_rows=[facts_for(g) for g in pending]
        )
        done += len(pending)


async def rescore(
    store: Store, enterprise_id: str, *, parts: int = 1, guest_ids: list[str] | None = None
) -> dict[str, int]:
    """Rescore an enterprise's guests; ``parts`` calls share the work across connections."""
    if guest_ids is not None:
        result = await store.call(
            "quality_rescore", p_enterprise_id=enterprise_id, p_guest_ids=guest_ids
        )
        return {"scored": result["scored"], "changed": result["changed"]}
    results = await asyncio.gather(
        *(
            store.call("quality_rescore", p_enterprise_id=enterprise_id, p_part=part, p_parts=parts)
            for part in range(parts)
        )
    )
    return {
        "scored": sum(r["scored"] for r in results),
        "changed": sum(r["changed"] for r in results),
    }


def rules_payload(rules: list[Rule]) -> list[dict[str, Any]]:
    return [rule.model_dump() for rule in rules]


async def score_profiles(store: Store, run: Run, *, parts: int = 2) -> None:
    enterprises = await store.call("quality_enterprises")
    for chain_id in sorted({e["chain_id"] for e in enterprises}):
        enriched = await enrich_chain(store, chain_id)
        duplicates = await store.call("quality_find_duplicates", p_chain_id=chain_id)
        run.count(facts_refreshed=enriched, duplicate_pairs=duplicates["pairs"])
    for enterprise in enterprises:
        await store.call(
            "quality_ensure_rule_set",
            p_enterprise_id=enterprise["id"],
            p_rules=rules_payload(DEFAULT_RULES),
        )
        counts = await rescore(store, enterprise["id"], parts=parts)
        queued = await store.call("quality_queue_enriched_pushes", p_enterprise_id=enterprise["id"])
        snapshot = await store.call("quality_snapshot", p_enterprise_id=enterprise["id"])
        run.count(
            scored=counts["scored"],
            scores_changed=counts["changed"],
            enriched_pushes_queued=queued["guests"],
        )
        log.info("scored", enterprise=enterprise["name"], average=snapshot["average"], **counts)
