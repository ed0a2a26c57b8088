"""The score job: enrich what changed, rescore what is due, snapshot — in proportion to what
changed, in calls that each fit the REST API's statement timeout.

First the statistics of what scoring reads (when a load left them stale); per chain, the facts of
the guests that changed (which rescores them and updates their duplicate suggestions). Per
enterprise: a full pass when what a score means changed (first scoring, a rule set enabled,
enrichment settings), the guests whose score the calendar changes today, enriched values to
push, the day's snapshot (not again while no score changed). Each bulk write is analyzed where
it is made (the facts refresh, the duplicates, the call that finishes a full pass); last, the
statistics of what the run wrote otherwise, when it wrote a large share.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from shared.db.store import Store
from shared.logs import get_logger
from shared.quality.facts import facts_for, refresh_chain
from shared.quality.passes import full_pass, rescore_due
from shared.quality.rules import DEFAULT_RULES, Rule
from shared.quality.statistics import SCORING_INPUTS, SCORING_OUTPUTS, analyze_tables
from shared.sync.runs import Run

__all__ = ["facts_for", "rules_payload", "score_profiles"]

log = get_logger(__name__)


def rules_payload(rules: list[Rule]) -> list[dict[str, Any]]:
    return [rule.model_dump() for rule in rules]


async def score_profiles(store: Store, run: Run, *, parts: int = 2) -> None:
    """Score every enterprise; ``parts`` calls share a full pass."""
    enterprises = await store.call("quality_enterprises")
    for enterprise in enterprises:
        await store.call(
            "quality_ensure_rule_set",
            p_enterprise_id=enterprise["id"],
            p_rules=rules_payload(DEFAULT_RULES),
        )
    written: Counter[str] = Counter()
    # what a load wrote without analyzing it (the planner would read a fresh table once per row)
    run.count(tables_analyzed=len(await analyze_tables(store, SCORING_INPUTS)))
    for chain_id in sorted({e["chain_id"] for e in enterprises}):
        refresh = await refresh_chain(store, chain_id, workers=parts)
        run.count(
            facts_refreshed=refresh.facts,
            duplicate_pairs=refresh.pairs,
            scored=refresh.scored,
            scores_changed=refresh.changed,
            tables_analyzed=refresh.analyzed,  # what it wrote, before the duplicates read it
        )
    for enterprise in enterprises:
        written.update(guest_scores=await score_enterprise(store, run, enterprise, parts=parts))
    # what this run wrote and no call analyzed yet, and what others wrote to these tables (the
    # statistics collector's count: a pass a frontend drove, a sync)
    outputs = {table: written.get(table) or None for table in SCORING_OUTPUTS}
    run.count(tables_analyzed=len(await analyze_tables(store, outputs)))


async def score_enterprise(
    store: Store, run: Run, enterprise: dict[str, Any], *, parts: int
) -> int:
    """The full pass (when due), today's calendar changes, pushes, snapshot; scores written and
    not analyzed yet (the call that finishes a pass analyzes what the pass wrote)."""
    rescored = await full_pass(store, enterprise["id"], workers=parts)
    due = await rescore_due(store, enterprise["id"])
    queued = await queue_pushes(store, enterprise["id"])
    snapshot = await store.call("quality_snapshot", p_enterprise_id=enterprise["id"])
    run.count(
        scored=rescored.scored + due.scored,
        scores_changed=rescored.changed + due.changed,
        enriched_pushes_queued=queued,
    )
    log.info(
        "scored",
        enterprise=enterprise["name"],
        average=snapshot["average"],
        full_pass=rescored.scored,
        longest_call_seconds=round(rescored.longest_call, 2),
        due_today=due.scored,
        changed=rescored.changed + due.changed,
    )
    return due.changed


async def queue_pushes(store: Store, enterprise_id: str, *, batch: int = 5000) -> int:
    """Enriched values an admin chose to push become pending local changes; guests queued."""
    queued = 0
    while True:
        step = await store.call(
            "quality_queue_enriched_pushes", p_enterprise_id=enterprise_id, p_limit=batch
        )
        queued += int(step["guests"])
        if not step["more"]:
            return queued
