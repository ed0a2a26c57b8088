"""Facts and scores of the guests that just changed, at once (the real-time worker's call after
it wrote guests or pushed edits): one page of the chain's guests whose facts are older than
their row, and one of those with an edit still to push, each put with ``quality_facts_put``
(normalise, facts, rescore of those guests, queued for their duplicate suggestions); then the
duplicate suggestions around a page of the queued guests (:func:`shared.quality.duplicates.update`:
each matched against the rest by its blocking keys, with the chain's stored model).

Bounded to a page each: more than a page changed (a first load, a reconcile) is the score job's
(:func:`shared.quality.facts.refresh_chain`: bulk duplicates, statistics), which also runs the
full passes, the calendar's changes and the snapshots."""

from __future__ import annotations

from collections.abc import Collection

from shared.db.store import Store
from shared.quality import duplicates
from shared.quality.facts import Refresh, put

PAGE = 500


async def rescore_changed(
    store: Store, chain_id: str, *, limit: int = PAGE, ids: Collection[str] | None = None
) -> Refresh:
    """Put the facts (and scores) of up to ``limit`` changed and ``limit`` edited guests of
    the chain; what it did. With ``ids`` (the guests a caller just wrote), the changed ones
    among them, read by id (``quality_facts_of``) instead of the scan of the chain's recently
    synced guests (``quality_facts_changed``), whose cost grows with a steady stream."""
    refresh = Refresh()
    if ids is None:
        page = await store.call("quality_facts_changed", p_chain_id=chain_id, p_limit=limit)
        changed = page["guests"]
    else:
        wanted = sorted(ids)[:limit]
        changed = await store.call("quality_facts_of", p_chain_id=chain_id, p_ids=wanted)
    if changed:
        await put(store, chain_id, changed, refresh)
    edited = await store.call("quality_facts_edited", p_chain_id=chain_id, p_limit=limit)
    if edited:
        await put(store, chain_id, edited, refresh)
    step = await duplicates.update(store, chain_id)  # no model yet: the score job's full pass
    refresh.pairs += step.pairs
    refresh.uninformative += step.uninformative
    return refresh
