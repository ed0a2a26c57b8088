"""Facts of the guests that changed: Python normalises what needs libraries (e-mail, phone), the
database derives the rest and rescores those guests; when any changed, the chain's duplicate
suggestions are weighed again (:mod:`shared.quality.duplicates`).

Only the guests synced since the previous refresh are read (``quality_facts_changed`` pages
through them by an index), and the guests with a staff edit still to push. What the refresh wrote is analyzed when it was a large share (a first load's
facts), before the duplicates and the full pass read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.db.store import Store
from shared.quality import duplicates, normalize
from shared.quality.statistics import analyze_tables

BATCH = 1000
# past a fifth of the chain, a change is a bulk load (its facts are analyzed as such)
BULK_SHARE = 0.2


@dataclass
class Refresh:
    """What a refresh of a chain's facts did."""

    facts: int = 0
    scored: int = 0
    changed: int = 0
    pairs: int = 0
    bulk: bool = False
    analyzed: int = 0
    uninformative: int = 0  # shared values that paired no one (a travel agency's e-mail)

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
    # duplicates: a bulk change (or no model yet) is a full pass; otherwise the guests queued
    # by the puts are matched against the rest, a page at a time; nothing queued, nothing done
    if refresh.bulk:
        await rebuild_duplicates(store, chain_id, refresh)
    else:
        while True:
            step = await duplicates.update(store, chain_id)
            if step.no_model:
                await rebuild_duplicates(store, chain_id, refresh)
                break
            refresh.pairs += step.pairs
            refresh.uninformative += step.uninformative
            if not step.more:
                break
    if refresh.bulk or refresh.pairs:
        written = {"guest_duplicates": refresh.pairs or None}
        refresh.analyzed += len(await analyze_tables(store, written))
    return refresh


async def rebuild_duplicates(store: Store, chain_id: str, refresh: Refresh) -> None:
    """The full pass; what the queue held is part of it."""
    # the exact-key matcher's queue reader, discarding: the full pass weighs every guest
    await store.call("quality_duplicates_refresh", p_chain_id=chain_id, p_discard=True)
    done = await duplicates.rebuild(store, chain_id)
    refresh.pairs += done.pairs
    refresh.uninformative += sum(done.uninformative.values())


def written_by_puts(refresh: Refresh) -> dict[str, int]:
    """Rows the puts wrote, per table (an enrichment row or so per guest); none: nothing."""
    if not refresh.facts:
        return {}
    return {
        "guest_facts": refresh.facts,
        "guest_enrichments": refresh.facts,
        "guest_scores": refresh.changed,
    }
