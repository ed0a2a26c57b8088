"""What an admin's rule set costs to score, against the default set, side by side.

    python -m bench.rule_cost [--guests 100000] [--runs 3] [--attack-guests 2000]

One database of generated guests with facts (bench.score's generator). Each candidate set is the
most expensive of its kind that the bounds of shared/quality/cost.py accept (the units priced
there), checked by the database (``app.quality_rule_set_problem``); rounds alternate the sets so
load on the machine falls on all of them alike, each round starting with another set. Two
figures per set, medians over the rounds:

* evaluation: the scoring query alone over every guest (what the rules cost, nothing else);
* full pass: the set enabled, then the full pass the score job runs (writes included).

The attack the bounds stop, the default set plus 300 distinct patterns (each accepted on its
own), is refused now; it is measured once, written around the bounds, on the first
``--attack-guests`` guests (at full size it runs for minutes), and scaled to the whole.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections import defaultdict
from typing import Any

import psycopg

from bench._db import LOCAL_SERVER, fresh_database
from bench.score import CHAIN, ENTERPRISE, generate
from shared.db.store import PsycopgTransport, Store
from shared.quality import cost
from shared.quality.passes import full_pass
from shared.quality.rules import DEFAULT_RULES

Rule = dict[str, Any]
FIELDS = [
    "first_name", "last_name", "email", "phone", "birth_date", "nationality_code", "address",
    "identity_document", "language", "title", "sex", "loyalty_code", "company",
]  # fmt: skip


def rule(field: str, kind: str, params: dict[str, Any] | None = None, weight: int = 5) -> Rule:
    return {"field": field, "kind": kind, "params": params or {}, "weight": weight}


def pattern(regex: str, field: str = "email") -> Rule:
    return rule(field, "pattern", {"regex": regex})


def cross(field: str, other: str) -> Rule:
    return rule(field, "cross_field", {"other": other, "op": "differs"})


def candidates() -> dict[str, list[Rule]]:
    """The most expensive sets of each kind the bounds accept (asserted below)."""
    email = [rule("email", "required", weight=50)]
    return {
        "two patterns, size 300 ([a-z]{0,75})": [
            *email,
            pattern("[a-z]{0,75}"),
            pattern("[0-9]{0,75}"),
        ],
        "two patterns, size 300 (.*a.{147})": [*email, pattern(".*a.{147}"), pattern(".*b.{147}")],
        "10 distinct short patterns": email + [pattern(f"^g{i}[a-z0-9]*$") for i in range(10)],
        "10 cross-field rules": [*email, rule("last_name", "required")]
        + [cross("email", "last_name")] * 10,
        "19 length rules": email + [rule("email", "length", {"min": 3, "max": 60})] * 19,
        "13 fields, 6 cross-field": [rule(f, "required") for f in FIELDS]
        + [cross("email", "last_name")] * 6,
        "50 allowed-values rules of 200": [
            rule("email", "allowed_values", {"values": [f"v{i}-{j}" for j in range(200)]})
            for i in range(50)
        ],
    }


def attack() -> list[Rule]:
    """The issue's set: the defaults and 300 distinct patterns, each accepted on its own."""
    defaults = [r.model_dump() for r in DEFAULT_RULES]
    return defaults + [pattern(f"^L{i}[a-z0-9]*$", "last_name") for i in range(300)]


def one(conn: psycopg.Connection, sql: str, *params: Any) -> Any:
    row = conn.execute(sql, params).fetchone()
    assert row is not None
    return row[0]


def draft(conn: psycopg.Connection, rules: list[Rule], *, checked: bool = True) -> str:
    """A draft with ``rules``, each checked by the trigger (or written around it)."""
    rule_set = str(one(conn, "select public.quality_draft_rule_set(%s)", ENTERPRISE)["id"])
    with conn.transaction():
        if not checked:
            conn.execute("set local session_replication_role = replica")
        conn.execute("delete from public.quality_rules where rule_set_id = %s", (rule_set,))
        for r in rules:
            conn.execute(
                "insert into public.quality_rules (rule_set_id, enterprise_id, field, kind, params,"
                " weight) values (%s, %s, %s, %s, %s, %s)",
                (rule_set, ENTERPRISE, r["field"], r["kind"], json.dumps(r["params"]), r["weight"]),
            )
    return rule_set


def accepted(conn: psycopg.Connection, rules: list[Rule]) -> str | None:
    """What the database says of the set (None: within every bound)."""
    entries = [{k: r[k] for k in ("field", "kind", "params")} for r in rules]
    problem: str | None = one(
        conn, "select app.quality_rule_set_problem(%s::jsonb)", json.dumps(entries)
    )
    return problem


def evaluation(conn: psycopg.Connection, rule_set: str, upper: Any = None) -> float:
    """Seconds for the scoring query of ``rule_set`` (every verdict) over every guest, or the
    guests with ids below ``upper``."""
    query = one(conn, "select app.quality_score_select(%s)", rule_set)
    with psycopg.RawCursor(conn) as cursor:  # the query's own $1..$4
        started = time.perf_counter()
        cursor.execute(
            f"select count(*), sum(score), sum(cardinality(failed_rules)) from ({query}) s",
            (CHAIN, None, None, upper),
        )
        return time.perf_counter() - started


async def pass_seconds(db: str, rule_set: str) -> float:
    store = Store(await PsycopgTransport.connect(db, max_size=4))
    try:
        started = time.perf_counter()
        await store.call("quality_enable_rule_set", p_rule_set_id=rule_set, p_rescore_limit=0)
        await full_pass(store, ENTERPRISE, workers=2)
        return time.perf_counter() - started
    finally:
        await store.aclose()


def measure(db: str, args: argparse.Namespace) -> None:
    sets = {"default (94 units)": [r.model_dump() for r in DEFAULT_RULES], **candidates()}
    evaluated: dict[str, list[float]] = defaultdict(list)
    passed: dict[str, list[float]] = defaultdict(list)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("set jit = off")
        for name, rules in sets.items():
            problem = accepted(conn, rules)
            assert problem is None, f"{name}: {problem}"
        units = {
            name: cost.measure((r["field"], r["kind"], r["params"]) for r in rules).cost
            for name, rules in sets.items()
        }
        asyncio.run(pass_seconds(db, draft(conn, sets["default (94 units)"])))  # every score
        names = list(sets)
        for round_ in range(args.runs):
            start = round_ % len(names)  # each round starts with another set
            for name in names[start:] + names[:start]:
                rule_set = draft(conn, sets[name])
                evaluated[name].append(evaluation(conn, rule_set))
                passed[name].append(asyncio.run(pass_seconds(db, rule_set)))
            print(f"round {round_ + 1} of {args.runs} done")
        (upper,) = conn.execute(  # the first guests by id: a slice, as the pass scores
            "select mews_id from public.guests order by mews_id offset %s limit 1",
            (args.attack_guests,),
        ).fetchone() or (None,)
        refused = accepted(conn, attack())
        sample_default = evaluation(conn, draft(conn, sets["default (94 units)"]), upper)
        sample_attack = evaluation(conn, draft(conn, attack(), checked=False), upper)
    report(
        args,
        units,
        evaluated,
        passed,
        refused=refused,
        attack_ratio=sample_attack / sample_default,
    )


def report(
    args: argparse.Namespace,
    units: dict[str, int],
    evaluated: dict[str, list[float]],
    passed: dict[str, list[float]],
    *,
    refused: str | None,
    attack_ratio: float,
) -> None:
    base_eval = statistics.median(evaluated["default (94 units)"])
    base_pass = statistics.median(passed["default (94 units)"])
    print(f"\n{args.guests:,} guests, medians of {args.runs} rounds (ratio to the default set)")
    print(f"  {'set':42s} {'units':>5s} {'evaluation':>16s} {'full pass':>16s}")
    worst = 0.0
    for name, seconds in evaluated.items():
        e, p = statistics.median(seconds), statistics.median(passed[name])
        worst = max(worst, p / base_pass) if not name.startswith("default") else worst
        print(
            f"  {name:42s} {units[name]:5d} {e:7.2f} s {e / base_eval:5.2f}×"
            f" {p:7.2f} s {p / base_pass:5.2f}×"
        )
    print(f"  most expensive accepted set, full pass: {worst:.2f}× the default set's (goal ≤ 2×)")
    print(
        f"  the issue's 300 distinct patterns: refused ({refused});"
        f" measured around the bounds on {args.attack_guests:,} guests:"
        f" {attack_ratio:.0f}× the default set's evaluation"
        f" (~{attack_ratio * base_eval:.0f} s for {args.guests:,} guests)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--guests", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--attack-guests", type=int, default=2_000)
    parser.add_argument("--server-url", default=LOCAL_SERVER)
    args = parser.parse_args()
    with fresh_database(args.server_url) as db:
        seconds = generate(db, args.guests)
        print(f"generated {args.guests:,} guests with facts in {seconds:.1f} s")
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("analyze")
        measure(db, args)


if __name__ == "__main__":
    main()
