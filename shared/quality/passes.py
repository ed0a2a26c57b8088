"""Rescoring in calls that each fit the REST API's statement timeout (Supabase: 8 s).

A full pass (a rule set enabled, enrichment settings changed, the first scoring) is split by
the database into lanes of about ``guests_per_call`` guests; each call of
``quality_rescore_pass`` scores one lane that no other caller holds, so ``workers`` loops share
the work, and a pass interrupted anywhere resumes where it stood. The call that starts a pass
only lays out its lanes (it holds the enterprise's state until it commits), so every lane is
scored side by side. A dry run pages the same way,
carrying its running totals. The same calls serve a frontend (a loop in JavaScript) and the
service, over either transport.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.db.store import Store, StoreError

# about this many guests per call: a few seconds on two shared cores, well inside 8 s
GUESTS_PER_CALL = 100_000
# a deadlock or serialization failure rolled the call back whole: it is safe to call again
RETRYABLE = frozenset({"40P01", "40001"})
ATTEMPTS = 3
BUSY_WAIT_SECONDS = 0.2


@dataclass
class PassResult:
    """What a full pass did, and its longest call."""

    scored: int = 0
    changed: int = 0
    calls: int = 0
    longest_call: float = 0.0
    done: bool = False
    snapshot: dict[str, Any] | None = None

    def add(self, step: dict[str, Any], seconds: float) -> None:
        self.scored += int(step["scored"])
        self.changed += int(step["changed"])
        self.calls += 1
        self.longest_call = max(self.longest_call, seconds)
        if step["done"]:
            self.done = True
            self.snapshot = step.get("snapshot") or self.snapshot


async def call_again_on_conflict(store: Store, fn: str, /, **args: Any) -> Any:
    """``store.call``, again when the database rolled the call back for a lock conflict."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return await store.call(fn, **args)
        except StoreError as exc:
            if exc.code not in RETRYABLE or attempt == ATTEMPTS:
                raise
    raise AssertionError("unreachable")


async def full_pass(
    store: Store,
    enterprise_id: str,
    *,
    workers: int = 2,
    guests_per_call: int = GUESTS_PER_CALL,
    clock: Callable[[], float] = time.perf_counter,
) -> PassResult:
    """Run the enterprise's full pass to its end (one call when none is due)."""
    result = PassResult()

    async def step() -> dict[str, Any]:
        started = clock()
        answer: dict[str, Any] = await call_again_on_conflict(
            store, "quality_rescore_pass", p_enterprise_id=enterprise_id, p_limit=guests_per_call
        )
        result.add(answer, clock() - started)
        return answer

    async def worker() -> None:
        while not result.done and not (await step())["busy"]:
            pass

    await step()  # alone: it starts the pass, scoring nothing (or finds none due)
    while not result.done:
        try:  # one caller's failure stops the others (a task group cancels them)
            async with asyncio.TaskGroup() as callers:
                for _ in range(max(1, workers)):
                    callers.create_task(worker())
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None
        if not result.done:
            await asyncio.sleep(BUSY_WAIT_SECONDS)  # the lanes left are another caller's
    return result


async def rescore_due(store: Store, enterprise_id: str, *, batch: int = 5000) -> PassResult:
    """Rescore the guests whose score the calendar changes today (date_range rules)."""
    result = PassResult(done=True)
    while True:
        step = await call_again_on_conflict(
            store, "quality_rescore_due", p_enterprise_id=enterprise_id, p_limit=batch
        )
        result.scored += int(step["scored"])
        result.changed += int(step["changed"])
        result.calls += 1
        if not step["more"]:
            return result


async def enable_rule_set(
    store: Store, rule_set_id: str, *, workers: int = 2, guests_per_call: int = GUESTS_PER_CALL
) -> dict[str, Any]:
    """Enable a draft and rescore everyone, call by call; the answer of the one-call form
    (rule_set_id, scored, changed, snapshot)."""
    enabled = await store.call(
        "quality_enable_rule_set", p_rule_set_id=rule_set_id, p_rescore_limit=0
    )
    rescored = await full_pass(
        store, enabled["enterprise_id"], workers=workers, guests_per_call=guests_per_call
    )
    return {
        "rule_set_id": rule_set_id,
        "enterprise_id": enabled["enterprise_id"],
        "scored": rescored.scored,
        "changed": rescored.changed,
        "done": rescored.done,
        "snapshot": rescored.snapshot,
    }


async def dry_run(
    store: Store, rule_set_id: str, *, guests_per_call: int = GUESTS_PER_CALL
) -> dict[str, Any]:
    """What enabling a rule set would do, page by page; the figures of the one-call form."""
    figures: dict[str, Any] = await store.call(
        "quality_dry_run", p_rule_set_id=rule_set_id, p_limit=guests_per_call
    )
    while figures["next"] is not None:
        figures = await store.call(
            "quality_dry_run",
            p_rule_set_id=rule_set_id,
            p_page=figures["next"],
            p_limit=guests_per_call,
            p_totals=figures["totals"],
        )
    return {k: v for k, v in figures.items() if k not in ("next", "totals")}
