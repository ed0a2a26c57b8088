"""The score job: enrich what changed, rescore what is due, snapshot — in proportion to what
changed, in calls that each fit the REST API's statement timeout.

First the statistics of what scoring reads (when a load left them stale); per chain, the facts of
the guests that changed (which rescores them and updates their duplicate suggestions). Per
enterprise: a full pass when what a score means changed (first scoring, a rule set enabled,
enrichment settings), the guests whose score the calendar changes today, enriched values to
push, the day's snapshot (not again while no score changed). Each bulk write is analyzed where
it is made (the facts refresh, the duplicates, the call that finishes a full pass); last, the
statistics of what the run wrote otherwise, when it wrote a large share.

Each chain's refresh and each enterprise's scoring is a unit of its own: a unit the database
refuses (a statement timeout, a rule set saved before the cost bounds) is recorded for its
enterprise (``quality_unit_failed``: the error, and when to try again, later each time it fails
again) and the run goes on with the others; it ends ``partial`` naming each unit left, so one
hotel's rule set never stops scoring for the rest. A lost database connection is no unit's
failure: it ends the run.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from shared.db.store import Store, StoreError
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
    left: list[str] = []
    # what a load wrote without analyzing it (the planner would read a fresh table once per row)
    run.count(tables_analyzed=len(await analyze_tables(store, SCORING_INPUTS)))
    for chain_id in sorted({e["chain_id"] for e in enterprises}):
        try:
            refresh = await refresh_chain(store, chain_id, workers=parts)
        except StoreError as exc:
            _unit_failure_or_raise(exc)
            run.count(chains_failed=1)
            left.append(f"facts of chain {chain_id}: {exc}")
            log.warning("chain refresh failed", chain_id=chain_id, error=str(exc))
            continue
        run.count(
            facts_refreshed=refresh.facts,
            duplicate_pairs=refresh.pairs,
            duplicate_values_uninformative=refresh.uninformative,
            scored=refresh.scored,
            scores_changed=refresh.changed,
            tables_analyzed=refresh.analyzed,  # what it wrote, before the duplicates read it
        )
    for enterprise in enterprises:
        written.update(guest_scores=await score_unit(store, run, enterprise, left, parts=parts))
    if left:  # every unit left for a later run, named
        run.degrade("partial", "; ".join(left))
    # what this run wrote and no call analyzed yet, and what others wrote to these tables (the
    # statistics collector's count: a pass a frontend drove, a sync)
    outputs = {table: written.get(table) or None for table in SCORING_OUTPUTS}
    run.count(tables_analyzed=len(await analyze_tables(store, outputs)))


def _unit_failure_or_raise(exc: StoreError) -> None:
    """A refusal costs its unit only; a lost connection (SQLSTATE class 08, or none) is no
    unit's failure: raised again."""
    if exc.code is None or exc.code.startswith("08"):
        raise exc


async def score_unit(
    store: Store, run: Run, enterprise: dict[str, Any], left: list[str], *, parts: int
) -> int:
    """One enterprise's scoring as a unit: left alone while it backs off; a refusal recorded for
    it (when to try again); either way named in ``left``. Scores written (see
    :func:`score_enterprise`)."""
    name = enterprise["name"]
    if enterprise.get("backing_off"):
        run.count(enterprises_backing_off=1)
        left.append(
            f"{name}: not scored until {enterprise['retry_at']} after"
            f" {enterprise['failures']} failure(s) in a row ({enterprise['last_failure']})"
        )
        return 0
    try:
        written = await score_enterprise(store, run, enterprise, parts=parts)
    except StoreError as exc:
        _unit_failure_or_raise(exc)
        failed = await store.call(
            "quality_unit_failed", p_enterprise_id=enterprise["id"], p_error=str(exc)
        )
        run.count(enterprises_failed=1)
        left.append(f"{name}: {exc} (tried again after {failed['retry_at']})")
        log.warning("scoring failed", enterprise=name, error=str(exc), **failed)
        return 0
    if enterprise.get("failures"):
        await store.call("quality_unit_succeeded", p_enterprise_id=enterprise["id"])
    return written


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
