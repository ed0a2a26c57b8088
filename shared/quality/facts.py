"""Facts of the guests that changed: Python normalises what needs libraries (e-mail, phone), the
database derives the rest, rescores those guests and queues them for their duplicate
suggestions, which are then updated around them, a batch at a time.

Only the guests synced since the previous refresh are read (``quality_facts_changed`` pages
through them by an index), and the guests with a staff edit still to push. After a bulk change
(more than a fifth of the guests: a first load), duplicates are rebuilt instead, in parts that
each fit a call. What the refresh wrote is analyzed when it was a large share (a first load's
facts), before the duplicates and the full pass read it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from shared.db.store import Store
from shared.quality import normalize
from shared.quality.statistics import analyze_tables

BATCH = 1000
# updating the suggestions around each changed guest costs about five times what rebuilding
# costs per guest of the chain: past a fifth of the chain, rebuild
BULK_SHARE = 0.2
GUESTS_PER_DUPLICATES_CALL = 100_000


@dataclass
class Refresh:
    """What a refresh of a chain's facts did."""

    facts: int = 0
    scored: int = 0
    changed: int = 0
    pairs: int = 0
    bulk: bool = False
    analyzed: int = 0

    def add(self, put: dict[str, Any]) -> None:
        self.facts += int(put["facts"])
        self.scored += int(put["scored"])
        self.changed += int(put["changed"])


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


def is_bulk(changed: int, guests: int) -> bool:
    """A change large enough that rebuilding duplicates beats updating around each guest."""
    return changed > BULK_SHARE * guests


async def put(store: Store, chain_id: str, guests: list[dict[str, Any]], refresh: Refresh) -> None:
    refresh.add(
        await store.call(
            "quality_facts_put", p_chain_id=chain_id, p_rows=[facts_for(g) for g in guests]
        )
    )


async def refresh_chain(
    store: Store, chain_id: str, *, batch: int = BATCH, workers: int = 2
) -> Refresh:
    """Refresh the facts of a chain's changed guests (and their scores and duplicates)."""
    page = await store.call("quality_facts_changed", p_chain_id=chain_id, p_limit=batch)
    guests = int(page["guests_estimate"] or 0)
    refresh = Refresh()
    while True:
        if page["guests"]:
            await put(store, chain_id, page["guests"], refresh)
        if page["next"] is None:
            break
        page = await store.call(
            "quality_facts_changed", p_chain_id=chain_id, p_after=page["next"], p_limit=batch
        )
    while edited := await store.call("quality_facts_edited", p_chain_id=chain_id, p_limit=batch):
        await put(store, chain_id, edited, refresh)
    # what the puts wrote, before the duplicates (and a full pass) read it
    refresh.analyzed += len(await analyze_tables(store, written_by_puts(refresh)))
    refresh.bulk = is_bulk(refresh.facts, guests)
    if refresh.bulk:  # what was queued, the rebuild covers
        await store.call("quality_duplicates_refresh", p_chain_id=chain_id, p_discard=True)
        refresh.pairs = await rebuild_duplicates(store, chain_id, guests=guests, workers=workers)
    else:
        refresh.pairs = await refresh_duplicates(store, chain_id)
    if refresh.bulk or refresh.pairs:
        written = {"guest_duplicates": refresh.pairs or None}
        refresh.analyzed += len(await analyze_tables(store, written))
    return refresh


def written_by_puts(refresh: Refresh) -> dict[str, int]:
    """Rows the puts wrote, per table (an enrichment row or so per guest); none: nothing."""
    if not refresh.facts:
        return {}
    return {
        "guest_facts": refresh.facts,
        "guest_enrichments": refresh.facts,
        "guest_scores": refresh.changed,
    }


async def refresh_duplicates(store: Store, chain_id: str, *, batch: int = 5000) -> int:
    """Update the suggestions around the guests queued since the last time; pairs written."""
    pairs = 0
    while True:
        done = await store.call("quality_duplicates_refresh", p_chain_id=chain_id, p_limit=batch)
        pairs += int(done["pairs"])
        if not done["more"]:
            return pairs


async def rebuild_duplicates(store: Store, chain_id: str, *, guests: int, workers: int = 2) -> int:
    """Every duplicate suggestion of a chain again, in parts of about 100,000 guests."""
    parts = max(1, -(-guests // GUESTS_PER_DUPLICATES_CALL))
    queue = list(range(parts))
    pairs = 0

    async def worker() -> None:
        nonlocal pairs
        while queue:
            part = queue.pop()
            found = await store.call(
                "quality_find_duplicates", p_chain_id=chain_id, p_part=part, p_parts=parts
            )
            pairs += int(found["pairs"])

    await asyncio.gather(*(worker() for _ in range(max(1, workers))))
    return pairs
