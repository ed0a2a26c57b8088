"""Set-based rescoring of many guests, and scoring one changed guest.

    python -m bench.score [--guests 1000000] [--runs 3] [--parts 2]

Generates guests with varied completeness (and their facts) in a fresh database, enables the
hotel defaults, then times: the first scoring of everyone; a rescore of everyone after a rule
change (every run flips a weight, so every score is rewritten), over 1 connection and over
``--parts`` connections side by side; and one changed guest (enrich + rescore it), median of 50.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid

import psycopg

from bench._db import LOCAL_SERVER, fresh_database
from shared.db.store import PsycopgTransport, Store
from shared.quality.job import facts_for, rescore, rules_payload
from shared.quality.rules import DEFAULT_RULES

CHAIN = "5b3c1f00-0000-4000-8000-00000000c4a1"
ENTERPRISE = "5b3c1f00-0000-4000-8000-0000000e0001"

GENERATE = """
insert into public.guests (chain_id, mews_id, first_name, last_name, email, has_ota_email, phone, birth_date,
  nationality_code, preferred_language_code, title, mews_updated_utc, raw, raw_hash)
select %(chain)s, md5('g' || i)::uuid,
  case when i %% 10 <> 0 then 'First' || i end, 'Last' || i,
  case when i %% 4 <> 0 then 'guest' || i || '@example.com' end, i %% 25 = 0,
  case when i %% 3 <> 0 then '+4420794' || lpad((i %% 100000)::text, 5, '0') end,
  case when i %% 2 = 0 then date '1950-01-01' + (i %% 18000) end,
  case when i %% 5 <> 0 then 'GB' end, case when i %% 6 <> 0 then 'en-GB' end,
  case when i %% 7 = 0 then 'Mister' end, now(), '{}'::jsonb, md5(i::text)
from generate_series(1, %(n)s) i;
insert into public.guest_facts (chain_id, guest_mews_id, email_valid, phone_valid, has_address, has_document)
select %(chain)s, md5('g' || i)::uuid, case when i %% 4 <> 0 then i %% 9 <> 0 end,
  case when i %% 3 <> 0 then i %% 11 <> 0 end, i %% 8 <> 0, i %% 3 = 0
from generate_series(1, %(n)s) i;
"""


def flip_weight(conn: psycopg.Connection, weight: int) -> None:
    rules = rules_payload(DEFAULT_RULES)
    for rule in rules:
        if rule["field"] == "phone" and rule["kind"] == "required":
            rule["weight"] = weight
    conn.execute(
        "update public.quality_rule_sets set status = 'retired' where enterprise_id = %s and status = 'enabled'",
        (ENTERPRISE,),
    )
    conn.execute(
        "select public.quality_ensure_rule_set(%s, %s::jsonb)", (ENTERPRISE, json.dumps(rules))
    )


async def timed_rescore(db: str, parts: int) -> tuple[float, dict[str, int]]:
    store = Store(await PsycopgTransport.connect(db, max_size=parts + 1))
    try:
        started = time.perf_counter()
        counts = await rescore(store, ENTERPRISE, parts=parts)
        return time.perf_counter() - started, counts
    finally:
        await store.aclose()


async def one_guest(db: str, runs: int) -> tuple[list[float], list[float]]:
    store = Store(await PsycopgTransport.connect(db, max_size=2))
    score_only, enrich_and_score = [], []
    try:
        for i in range(runs):
            guest = str(uuid.UUID(hex=f"{i:032x}"))
            guest = (
                await store.call("guest_ids_page", p_chain_id=CHAIN, p_after=guest, p_limit=1)
            )[0]
            started = time.perf_counter()
            await store.call("quality_rescore", p_enterprise_id=ENTERPRISE, p_guest_ids=[guest])
            score_only.append(time.perf_counter() - started)
            started = time.perf_counter()
            facts = facts_for(
                {
                    "guest_mews_id": guest,
                    "email": f"x{i}@example.com",
                    "phone": "+44 20 7946 0958",
                    "nationality_code": "GB",
                    "address_country": None,
                    "synced_at": "2026-01-01T00:00:00Z",
                }
            )
            await store.call("quality_facts_put", p_chain_id=CHAIN, p_rows=[facts])
            await store.call("quality_rescore", p_enterprise_id=ENTERPRISE, p_guest_ids=[guest])
            enrich_and_score.append(time.perf_counter() - started)
    finally:
        await store.aclose()
    return score_only, enrich_and_score


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--guests", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--parts", type=int, default=2)
    parser.add_argument("--server-url", default=LOCAL_SERVER)
    args = parser.parse_args()
    with fresh_database(args.server_url) as db:
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("insert into public.chains (id, name) values (%s, 'Bench')", (CHAIN,))
            conn.execute(
                "insert into public.enterprises (id, chain_id, name) values (%s, %s, 'Bench Hotel')",
                (ENTERPRISE, CHAIN),
            )
            started = time.perf_counter()
            for statement in GENERATE.split(";")[:2]:
                conn.execute(statement, {"chain": CHAIN, "n": args.guests})
            conn.execute("vacuum analyze public.guests, public.guest_facts")
            print(
                f"generated {args.guests:,} guests with facts in {time.perf_counter() - started:.1f} s"
            )
            conn.execute(
                "select public.quality_ensure_rule_set(%s, %s::jsonb)",
                (ENTERPRISE, json.dumps(rules_payload(DEFAULT_RULES))),
            )
        first, counts = asyncio.run(timed_rescore(db, args.parts))
        print(
            f"first scoring ({args.parts} connections): {first:.2f} s, {counts['scored']:,} scored"
        )
        results: dict[int, list[float]] = {1: [], args.parts: []}
        weight = 15
        for _ in range(args.runs):
            for parts in (1, args.parts):
                weight = 31 - weight  # 15 ↔ 16: every score moves
                with psycopg.connect(db, autocommit=True) as conn:
                    flip_weight(conn, weight)
                seconds, counts = asyncio.run(timed_rescore(db, parts))
                assert counts["changed"] > 0.5 * counts["scored"], counts
                results[parts].append(seconds)
        for parts, times in results.items():
            print(
                f"rescore after a rule change, {parts} connection(s): median {statistics.median(times):.2f} s "
                f"(runs: {', '.join(f'{t:.2f}' for t in times)}), {counts['scored']:,} guests"
            )
        score_only, full = asyncio.run(one_guest(db, 50))
        print(
            f"one changed guest: rescore median {statistics.median(score_only) * 1000:.2f} ms; "
            f"normalise + facts + rescore median {statistics.median(full) * 1000:.2f} ms (50 guests)"
        )


if __name__ == "__main__":
    main()
