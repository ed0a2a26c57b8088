"""Recording runs honestly: every function invocation and command is a `sync_runs` row whose
status says what happened:

- ``succeeded``: all its work is done. Records kept in the quarantine (malformed, refused by
  the database) do not change that: the run's counts say how many (``<entity>_quarantined``);
- ``partial``: work was left for the next run, which carries on from the checkpoints: the time
  budget ran out, or a unit of work (a time window, a page of ids) kept failing in Mews and was
  left (``units_left``; the error names each, with its failure), or edits/events wait for a retry;
- ``rate_limited`` / ``failed``: it stopped early for that reason (the error says why).

And the quarantine: records that could not be read, mapped or stored, kept with the reason —
one entry per record version, counted at each sighting, resolved once a valid version of the
record is stored. Whatever a record holds, quarantining it never fails: a NUL character
(U+0000), which PostgreSQL text and jsonb cannot store, is kept as U+FFFD.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

import orjson

from shared.db.store import Store, StoreError
from shared.logs import get_logger, redact_text

FINAL_STATUSES = ("succeeded", "partial", "rate_limited", "failed")
NUL = "\x00"
REPLACEMENT = "\ufffd"
# what a run counts per entity, kept in its counts as ``<entity>_<what>`` (``customers_fetched``)
EntityCount = Literal[
    "fetched",
    "inserted",
    "updated",
    "unchanged",
    "quarantined",
    "corrected",
    "corrected_by_poll",
    "ids",
]
SHOWN_LEFT = 3  # units left for the next run named in a run's error


@dataclass
class Run:
    """A run in progress: add to its counts; set ``status`` to downgrade the outcome."""

    id: UUID
    job: str
    counts: Counter[str] = field(default_factory=Counter)
    status: str = "succeeded"
    error: str | None = None
    # units of work this run has done (e.g. a chain's customers, polled once for the several
    # enterprises of a portfolio)
    units_done: set[str] = field(default_factory=set)
    # why the outcome is what it is, by kind (see degrade)
    reasons: dict[str, str] = field(default_factory=dict)
    left: list[str] = field(default_factory=list)  # units of work left for the next run
    # set when another job marked this run abandoned (its process looked dead: a database
    # restart cut its session lock before the heartbeat took it again); its claims and leases
    # are free for others then
    abandoned: asyncio.Event = field(default_factory=asyncio.Event, compare=False, repr=False)

    def count(self, **increments: int) -> None:
        self.counts.update(increments)

    def count_entity(self, entity: str, what: EntityCount, increment: int) -> None:
        """Add ``increment`` to the entity's count ``what`` (a zero still names the count)."""
        self.counts.update({entity_key(entity, what): increment})

    def count_waiting(self, entity: str, owner: str) -> None:
        """The entity's first load waits for its owner's (``<entity>_waiting_for_<owner>``)."""
        self.counts.update({waiting_key(entity, owner): 1})

    def entity_count(self, entity: str, what: EntityCount) -> int:
        return self.counts[entity_key(entity, what)]

    def degrade(self, status: str, error: str | None = None, *, kind: str | None = None) -> None:
        """Lower the outcome (never raise it): succeeded < partial < rate_limited < failed.
        The error says why the outcome is what it is: a lesser outcome's text never replaces
        the text of a worse one. One text is kept per ``kind``: a later text of a kind
        replaces the earlier one, texts of different kinds are kept side by side."""
        rank = FINAL_STATUSES.index(status)
        if rank > FINAL_STATUSES.index(self.status):
            self.status = status
            self.reasons.clear()
        if error and rank == FINAL_STATUSES.index(self.status):
            self.reasons[kind or ""] = without_nul(redact_text(error))
            self.error = "; ".join(self.reasons.values())

    def quarantined(self, entity: str, count: int) -> None:
        """Count ``count`` more quarantined records of ``entity`` (``<entity>_quarantined``).
        The run still succeeds: the records are kept with their reasons, and nothing is left
        for a later run to do."""
        if count > 0:
            self.count_entity(entity, "quarantined", count)

    def left_for_later(self, unit: str, exc: BaseException) -> None:
        """``unit`` (e.g. "customers first-load window 2025-01-01T00:00:00Z..2025-02-01T00:00:00Z")
        kept failing with ``exc`` and is left for the next run: the run is partial, and its
        error names every unit left with its failure (the first few, and how many in all)."""
        self.left.append(f"{unit}: {type(exc).__name__}: {exc}")
        self.count(units_left=1)
        shown = "; ".join(self.left[:SHOWN_LEFT])
        more = len(self.left) - SHOWN_LEFT
        tail = f"; and {more} more" if more > 0 else ""
        self.degrade("partial", f"left for the next run: {shown}{tail}", kind="left")


def entity_key(entity: str, what: EntityCount) -> str:
    """Where a run's counts keep an entity's count (``customers_fetched``)."""
    return f"{entity}_{what}"


def waiting_key(entity: str, owner: str) -> str:
    return f"{entity}_waiting_for_{owner}"


def outcome_for(exc: BaseException) -> str:
    """The run status an exception means. Errors that are not failures (a rate limit) say so
    with a ``run_outcome`` class attribute, so this module needs no adapter's exceptions."""
    outcome = getattr(exc, "run_outcome", "failed")
    return outcome if outcome in FINAL_STATUSES else "failed"


@asynccontextmanager
async def recorded_run(
    store: Store, job: str, scope_id: UUID | None = None, *, connection_id: str | None = None
) -> AsyncIterator[Run]:
    """Start a run (of one connection, when given), yield it, and finish it with its honest
    outcome and one summary log line."""
    where = {"p_connection_id": connection_id} if connection_id else {}
    started = await store.call(
        "run_start", p_job=job, p_scope_id=str(scope_id) if scope_id else None, **where
    )
    run = Run(id=UUID(started["id"]), job=job)
    log = get_logger(
        "guesthub.run",
        job=job,
        run_id=str(run.id),
        **({"connection": connection_id} if connection_id else {}),
    )
    failure: BaseException | None = None
    try:
        yield run
    except BaseException as exc:
        failure = exc
        run.degrade(outcome_for(exc), f"{type(exc).__name__}: {exc}")
        raise
    finally:
        try:
            await store.call(
                "run_finish",
                p_id=str(run.id),
                p_status=run.status,
                p_counts=dict(run.counts),
                p_error=run.error,
            )
        except StoreError as exc:
            if failure is None:
                raise
            # the failure under way is what the caller must hear about (often the same outage)
            log.warning("run not recorded as finished", error=str(exc))
        log.info("run finished", status=run.status, counts=dict(run.counts), error=run.error)


def quarantine_item(entity: str, scope_id: str | None, record: Any, reason: str) -> dict[str, Any]:
    """A record for :func:`quarantine`: its raw JSON when it is an object, else its text."""
    record_id = record.get("Id") if isinstance(record, dict) else None
    if record_id is not None and not isinstance(record_id, str):
        record_id = _json_text(record_id)
    whole = isinstance(record, dict)
    return {
        "entity": entity,
        "scope_id": scope_id,
        "mews_id": record_id,
        "reason": reason,
        "raw": record if whole else None,
        "raw_text": None if whole else _json_text(record),
    }


async def quarantine(store: Store, items: list[dict[str, Any]], run_id: UUID | None = None) -> int:
    """Keep records that failed to parse, map or store, with their reasons (one entry per record
    version; seeing it again counts a sighting). Returns how many records were quarantined."""
    if not items:
        return 0
    result = await store.call(
        "quarantine_add",
        p_items=[without_nul(item) for item in items],
        p_run_id=str(run_id) if run_id else None,
    )
    return int(result["quarantined"])


def without_nul(value: Any) -> Any:
    """``value`` with every NUL character (U+0000) in its strings and keys replaced by U+FFFD,
    which PostgreSQL can store. Iterative, so any depth the JSON parser accepted is fine."""
    if isinstance(value, str):
        return value.replace(NUL, REPLACEMENT)
    if not isinstance(value, dict | list):
        return value
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any]] = [(value, root, 0)]
    while stack:
        node, parent, slot = stack.pop()
        if isinstance(node, str):
            parent[slot] = node.replace(NUL, REPLACEMENT)
        elif isinstance(node, dict):
            copy: dict[str, Any] = {}
            parent[slot] = copy
            for key, child in node.items():
                clean = key.replace(NUL, REPLACEMENT) if isinstance(key, str) else key
                copy[clean] = None
                stack.append((child, copy, clean))
        elif isinstance(node, list):
            items: list[Any] = [None] * len(node)
            parent[slot] = items
            stack.extend((child, items, i) for i, child in enumerate(node))
        else:
            parent[slot] = node
    return root[0]


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return repr(value)
