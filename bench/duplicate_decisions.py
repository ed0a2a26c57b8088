"""What remembering duplicate decisions costs where pairs are written and where they are read.

    python -m bench.duplicate_decisions [--guests 200000] [--pairs 50000] [--decisions 2000]
                                        [--runs 5]

One database of generated guests (bench.score's generator), scored. Writes: every pair written
through ``quality_duplicates_put`` in the pass's batches (5,000), as inserts (an empty table)
and as updates (the same pairs again), with the statement triggers that hold decided pairs back
on and off, rounds alternating; then with ``--decisions`` pairs decided "different" (each held
back by its fingerprints). Reads, as a staff member under the REST API's conditions (role
``authenticated``, its policies): the suggestions call, the report, the gaps of a page of 50
guests. Medians over the rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from collections.abc import Callable

import psycopg
from psycopg.types.json import Jsonb

from bench._db import LOCAL_SERVER, fresh_database
from bench.score import CHAIN, ENTERPRISE, generate
from shared.quality.duplicates import PUT_BATCH

EVIDENCE = [
    {"field": "phone", "level": "exact", "weight": 8.0, "detail": ""},
    {"field": "birth_date", "level": "exact", "weight": 9.5, "detail": "1980-01-01"},
    {"field": "first_name", "level": "different", "weight": -5.0, "detail": "a/b"},
]
TRIGGERS = ("guest_duplicates_decided_insert", "guest_duplicates_decided_update")


def pairs_of(conn: psycopg.Connection, count: int) -> list[dict[str, object]]:
    ids = [
        str(i)
        for (i,) in conn.execute(
            "select mews_id from public.guests where chain_id = %s order by mews_id limit %s",
            (CHAIN, 2 * count),
        ).fetchall()
    ]
    return [
        {
            "a": ids[2 * i],
            "b": ids[2 * i + 1],
            "probability": 0.5 + (i % 50) / 100,
            "weight": 20.0,
            "evidence": EVIDENCE,
        }
        for i in range(count)
    ]


def put_all(conn: psycopg.Connection, pairs: list[dict[str, object]]) -> float:
    started = time.perf_counter()
    for start in range(0, len(pairs), PUT_BATCH):
        conn.execute(
            "select public.quality_duplicates_put(%s, %s)",
            (CHAIN, Jsonb(pairs[start : start + PUT_BATCH])),
        )
    return time.perf_counter() - started


def triggers(conn: psycopg.Connection, *, on: bool) -> None:
    for name in TRIGGERS:
        action = "enable" if on else "disable"
        conn.execute(f"alter table public.guest_duplicates {action} trigger {name}")


def as_staff(conn: psycopg.Connection, user: str, sql: str, params: tuple[object, ...]) -> float:
    with conn.transaction(force_rollback=True):
        conn.execute("set local role authenticated")
        conn.execute(
            "select set_config('request.jwt.claims', %s, true)",
            (json.dumps({"role": "authenticated", "sub": user}),),
        )
        started = time.perf_counter()
        conn.execute(sql, params).fetchall()
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guests", type=int, default=200_000)
    parser.add_argument("--pairs", type=int, default=50_000)
    parser.add_argument("--decisions", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--server-url", default=LOCAL_SERVER)
    args = parser.parse_args()
    figures: dict[str, list[float]] = defaultdict(list)
    with fresh_database(args.server_url) as db, psycopg.connect(db, autocommit=True) as conn:
        generate(db, args.guests)
        conn.execute("select public.quality_rescore(%s)", (ENTERPRISE,))
        staff = "5b3c1f00-0000-4000-8000-0000000057af"
        conn.execute("insert into auth.users (id, email) values (%s, 's@bench.example')", (staff,))
        conn.execute(
            "insert into public.app_users (id, email) values (%s, 's@bench.example')", (staff,)
        )
        conn.execute(
            "insert into public.memberships (user_id, enterprise_id, role) values (%s, %s, 'staff')",
            (staff, ENTERPRISE),
        )
        pairs = pairs_of(conn, args.pairs)
        conn.execute("analyze")

        def writes(label: str) -> None:
            for round_ in range(args.runs):
                for on in (round_ % 2 == 0, round_ % 2 == 1):
                    triggers(conn, on=on)
                    conn.execute("delete from public.guest_duplicates")
                    state = "on" if on else "off"
                    figures[f"{label}: insert, triggers {state}"].append(put_all(conn, pairs))
                    figures[f"{label}: update, triggers {state}"].append(put_all(conn, pairs))
            triggers(conn, on=True)

        writes("no decisions")
        for pair in pairs[: args.decisions]:
            conn.execute(
                "select public.duplicate_decide(%s, %s, %s, 'different')",
                (CHAIN, pair["a"], pair["b"]),
            )
        conn.execute("analyze public.duplicate_decisions")
        writes(f"{args.decisions} decisions")
        conn.execute("delete from public.guest_duplicates")
        put_all(conn, pairs)
        kept = conn.execute("select count(*) from public.guest_duplicates").fetchone()
        conn.execute("analyze")
        worst = conn.execute(
            "select guest_mews_id::text from public.guest_scores where enterprise_id = %s"
            " order by score limit 40",
            (ENTERPRISE,),
        ).fetchall()
        page = [g for (g,) in worst] + [str(p["a"]) for p in pairs[-10:]]
        reads: dict[str, Callable[[], float]] = {
            "read: quality_duplicate_suggestions(50)": lambda: as_staff(
                conn, staff, "select public.quality_duplicate_suggestions(%s, 50)", (ENTERPRISE,)
            ),
            "read: quality_report": lambda: as_staff(
                conn, staff, "select public.quality_report(%s)", (ENTERPRISE,)
            ),
            # the ids as supabase-js sends them (.in('guest_mews_id', ids)): the worst 40 and
            # 10 with a pair
            "read: gaps of 50 guests": lambda: as_staff(
                conn,
                staff,
                "select * from public.quality_guest_gaps where enterprise_id = %s"
                " and guest_mews_id = any (%s::uuid[])",
                (ENTERPRISE, page),
            ),
            "read: count of open suggestions": lambda: as_staff(
                conn,
                staff,
                "select count(*) from public.duplicate_suggestions where enterprise_id = %s",
                (ENTERPRISE,),
            ),
            "read: duplicate_suggestions page of 50": lambda: as_staff(
                conn,
                staff,
                "select * from public.duplicate_suggestions where enterprise_id = %s"
                " order by probability desc, match_weight desc limit 50",
                (ENTERPRISE,),
            ),
        }
        for _ in range(args.runs):
            for name, read in reads.items():
                figures[name].append(read())
    print(
        f"{args.guests:,} guests, {args.pairs:,} pairs written in batches of {PUT_BATCH:,},"
        f" {args.decisions:,} decided different; pairs stored after a pass: {kept[0] if kept else 0:,}"
    )
    for name, values in figures.items():
        print(f"  {name:<52} median {statistics.median(values):7.3f} s  (n={len(values)})")
    for label in ("no decisions", f"{args.decisions} decisions"):
        for kind in ("insert", "update"):
            on = statistics.median(figures[f"{label}: {kind}, triggers on"])
            off = statistics.median(figures[f"{label}: {kind}, triggers off"])
            print(f"  {label}, {kind}: triggers on / off = {on / off:.2f}")


if __name__ == "__main__":
    main()
