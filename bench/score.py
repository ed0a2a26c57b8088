"""Scoring at scale, as the score job and the REST API run it: every call within 8 s.

    python -m bench.score [--guests 1000000] [--runs 3] [--workers 2]

Each run generates guests with varied completeness, and their facts, in a fresh database
(autovacuum off on every table; nothing analyzed: right after a load), as if loaded an hour ago.
Then, side by side, medians over the runs:

* first scoring: what the score job does first — ANALYZE what is stale, the full pass (lanes of
  about 100,000 guests, ``--workers`` callers; the call that finishes it analyzes what it
  wrote), ANALYZE what is still stale; each step apart too;
* rescore after a rule change: a draft with the phone weight changed, enabled without rescoring,
  then the full pass, call by call (total, calls and the longest call);
* one changed guest: its mirror row changes, then normalise + facts + rescore (one call), and
  the rescore alone (median of 50 guests);
* scheduled score with nothing changed: the whole score job, once everything is scored (the
  first scheduled run, which reads every guest once, is shown apart).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg

from bench._db import LOCAL_SERVER, fresh_database
from shared.db.store import PsycopgTransport, Store
from shared.quality.facts import facts_for
from shared.quality.job import rules_payload, score_profiles
from shared.quality.passes import full_pass
from shared.quality.rules import DEFAULT_RULES
from shared.quality.statistics import SCORING_INPUTS, analyze_tables
from shared.sync.runs import Run

CHAIN = "5b3c1f00-0000-4000-8000-00000000c4a1"
ENTERPRISE = "5b3c1f00-0000-4000-8000-0000000e0001"
T = TypeVar("T")

GENERATE = """
insert into public.guests (chain_id, mews_id, first_name, last_name, email, has_ota_email, phone, birth_date,
  nationality_code, preferred_language_code, title, mews_updated_utc, raw, raw_hash, synced_at)
select %(chain)s, md5('g' || i)::uuid,
  case when i %% 10 <> 0 then 'First' || i end, 'Last' || i,
  case when i %% 4 <> 0 then 'guest' || i || '@example.com' end, i %% 25 = 0,
  case when i %% 3 <> 0 then '+4420794' || lpad((i %% 100000)::text, 5, '0') end,
  case when i %% 2 = 0 then date '1950-01-01' + (i %% 18000) end,
  case when i %% 5 <> 0 then 'GB' end, case when i %% 6 <> 0 then 'en-GB' end,
  case when i %% 7 = 0 then 'Mister' end, now() - interval '1 hour', '{}'::jsonb, md5(i::text),
  now() - interval '1 hour'
from generate_series(1, %(n)s) i;
insert into public.guest_facts (chain_id, guest_mews_id, email_valid, phone_valid, has_address, has_document,
  source_synced_at)
select %(chain)s, md5('g' || i)::uuid, case when i %% 4 <> 0 then i %% 9 <> 0 end,
  case when i %% 3 <> 0 then i %% 11 <> 0 end, i %% 8 <> 0, i %% 3 = 0, now() - interval '1 hour'
from generate_series(1, %(n)s) i;
"""


class Figures:
    """Seconds (or counts) per figure, over the runs."""

    def __init__(self) -> None:
        self.values: dict[str, list[float]] = defaultdict(list)

    def add(self, name: str, value: float) -> None:
        self.values[name].append(value)

    def median(self, name: str) -> float:
        return statistics.median(self.values[name])

    def runs(self, name: str, unit: str = "s") -> str:
        return ", ".join(
            f"{v:.2f}" if unit == "s" else f"{v:.2f} {unit}" for v in self.values[name]
        )


async def timed(fn: Callable[[], Awaitable[T]]) -> tuple[float, T]:
    started = time.perf_counter()
    result = await fn()
    return time.perf_counter() - started, result


def generate(db: str, guests: int) -> float:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("insert into public.chains (id, name) values (%s, 'Bench')", (CHAIN,))
        conn.execute(
            "insert into public.enterprises (id, chain_id, name) values (%s, %s, 'Bench Hotel')",
            (ENTERPRISE, CHAIN),
        )
        started = time.perf_counter()
        for statement in GENERATE.split(";")[:2]:
            conn.execute(statement, {"chain": CHAIN, "n": guests})
        conn.execute(
            "select public.quality_ensure_rule_set(%s, %s::jsonb)",
            (ENTERPRISE, json.dumps(rules_payload(DEFAULT_RULES))),
        )
        return time.perf_counter() - started


async def first_scoring(store: Store, workers: int, figures: Figures) -> None:
    async def job() -> int:
        seconds, _ = await timed(lambda: analyze_tables(store, SCORING_INPUTS))
        figures.add("first scoring: ANALYZE before", seconds)
        seconds, rescored = await timed(lambda: full_pass(store, ENTERPRISE, workers=workers))
        figures.add("first scoring: the pass", seconds)
        # the call that finished the pass analyzed what it wrote; the job checks what is stale
        seconds, _ = await timed(lambda: analyze_tables(store, {"guest_scores": None}))
        figures.add("first scoring: ANALYZE after", seconds)
        figures.add("first scoring: longest call", rescored.longest_call)
        return rescored.scored

    seconds, scored = await timed(job)
    figures.add("first scoring", seconds)
    figures.add("first scoring: guests", scored)


def draft_with_phone_weight(db: str, weight: int) -> str:
    with psycopg.connect(db, autocommit=True) as conn:
        (draft,) = conn.execute(
            "select public.quality_draft_rule_set(%s, 'bench')->>'id'", (ENTERPRISE,)
        ).fetchone()  # type: ignore[misc]
        conn.execute(
            "update public.quality_rules set weight = %s"
            " where rule_set_id = %s and field = 'phone' and kind = 'required'",
            (weight, draft),
        )
    return str(draft)


async def rule_change(store: Store, db: str, workers: int, weight: int, figures: Figures) -> None:
    """A draft with another weight, enabled without rescoring, then the pass call by call."""
    draft = draft_with_phone_weight(db, weight)
    started = time.perf_counter()
    enabled = await store.call("quality_enable_rule_set", p_rule_set_id=draft, p_rescore_limit=0)
    rescored = await full_pass(store, enabled["enterprise_id"], workers=workers)
    figures.add("rescore after a rule change", time.perf_counter() - started)
    figures.add("rescore after a rule change: longest call", rescored.longest_call)
    figures.add("rescore after a rule change: calls", rescored.calls)
    assert rescored.changed > 0.5 * rescored.scored, rescored


async def one_guest(store: Store, db: str, runs: int, figures: Figures) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        guests = [
            str(g)
            for (g,) in conn.execute(
                "select mews_id from public.guests where chain_id = %s order by mews_id limit %s",
                (CHAIN, runs),
            )
        ]
        for i, guest in enumerate(guests):
            # the mirror row changes, as a sync writes it
            row = conn.execute(
                "update public.guests set email = %s, phone = '+44 20 7946 0958', synced_at = now()"
                " where chain_id = %s and mews_id = %s"
                " returning mews_id::text, email, phone, nationality_code, synced_at",
                (f"changed{i}@example.com", CHAIN, guest),
            ).fetchone()
            assert row is not None
            source = dict(
                zip(
                    ("guest_mews_id", "email", "phone", "nationality_code", "synced_at"),
                    row,
                    strict=True,
                )
            )
            source["address_country"] = None
            source["synced_at"] = source["synced_at"].isoformat()

            async def enrich_and_score(guest: dict[str, Any] = source) -> None:
                await store.call("quality_facts_put", p_chain_id=CHAIN, p_rows=[facts_for(guest)])

            async def score_only(guest_id: str = guest) -> None:
                await store.call(
                    "quality_rescore", p_enterprise_id=ENTERPRISE, p_guest_ids=[guest_id]
                )

            figures.add(
                "one changed guest: normalise + facts + rescore", (await timed(enrich_and_score))[0]
            )
            figures.add("one changed guest: rescore alone", (await timed(score_only))[0])


async def scheduled(store: Store, workers: int, label: str, figures: Figures) -> dict[str, int]:
    run = Run(uuid.uuid4(), "score_profiles")
    seconds, _ = await timed(lambda: score_profiles(store, run, parts=workers))
    figures.add(label, seconds)
    return dict(run.counts)


async def measure(db: str, args: argparse.Namespace, figures: Figures, *, rest: bool) -> None:
    store = Store(await PsycopgTransport.connect(db, max_size=args.workers + 2))
    try:
        await first_scoring(store, args.workers, figures)
        if not rest:
            return
        weight = 15
        for _ in range(args.runs):
            weight = 31 - weight  # 15 <-> 16: every score moves
            await rule_change(store, db, args.workers, weight, figures)
        await one_guest(store, db, 50, figures)
        first = await scheduled(store, args.workers, "first scheduled score", figures)
        print(f"  first scheduled score after all this: {first}")
        for _ in range(args.runs):
            counts = await scheduled(
                store, args.workers, "scheduled score, nothing changed", figures
            )
        print(f"  scheduled score with nothing changed: {counts}")
    finally:
        await store.aclose()


def report(figures: Figures, guests: int) -> None:
    rows = [
        ("first scoring (right after the load, no ANALYZE before)", "first scoring"),
        ("  ANALYZE of what it reads", "first scoring: ANALYZE before"),
        ("  the pass (its last call analyzes what it wrote)", "first scoring: the pass"),
        ("  ANALYZE of what is stale after it", "first scoring: ANALYZE after"),
        ("  its longest call", "first scoring: longest call"),
        ("rescore after a rule change (enable + pass, total)", "rescore after a rule change"),
        ("  its longest call", "rescore after a rule change: longest call"),
        ("  calls", "rescore after a rule change: calls"),
        ("scheduled score, nothing changed", "scheduled score, nothing changed"),
        ("first scheduled score (reads every guest once)", "first scheduled score"),
    ]
    print(f"\nmedians at {guests:,} guests (runs in brackets)")
    for label, key in rows:
        if key.endswith("calls"):
            print(f"  {label:58s} {figures.median(key):8.0f}")
        else:
            print(f"  {label:58s} {figures.median(key):8.2f} s   [{figures.runs(key)}]")
    for label, key in (
        (
            "one changed guest: normalise + facts + rescore",
            "one changed guest: normalise + facts + rescore",
        ),
        ("one changed guest: rescore alone", "one changed guest: rescore alone"),
    ):
        print(f"  {label:58s} {figures.median(key) * 1000:8.2f} ms  (50 guests)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--guests", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="Callers sharing a full pass.")
    parser.add_argument("--server-url", default=LOCAL_SERVER)
    args = parser.parse_args()
    figures = Figures()
    for run in range(args.runs):
        with fresh_database(args.server_url) as db:
            seconds = generate(db, args.guests)
            print(f"run {run + 1}: generated {args.guests:,} guests with facts in {seconds:.1f} s")
            asyncio.run(measure(db, args, figures, rest=run == args.runs - 1))
            print(f"  first scoring {figures.values['first scoring'][-1]:.2f} s")
    report(figures, args.guests)


if __name__ == "__main__":
    main()
