"""Duplicate guests on a labelled set: today's exact-key matcher and the weighing one, side by side.

    python -m bench.duplicates [--customers 20000] [--rate 0.05] [--seed 202]
                               [--threshold 0.9] [--scale 100000 ...]

A simulator process (``guesthub simulator --duplicates RATE``) plants people entered twice and
look-alikes who are other people; the guests are read over HTTP (customers/getAll, addresses for
the phone's region) and normalised as the facts job does; the truth comes from
``/_admin/duplicates``. The seed must not be one the matcher was tuned on (101 was).

Prints precision, recall, F1 and look-alikes suggested for both matchers, the new one's
precision-recall curve over thresholds, and the time of a full pass (prepare, estimate, block,
compare) at each ``--scale`` (guests generated in process with the same planting).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx

from bench._sim import simulator_process
from shared.quality import matching
from shared.quality.duplicates import FLOOR
from shared.quality.facts import facts_for
from shared.settings import DEMO_ACCESS_TOKEN, DEMO_CLIENT_TOKEN

THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999)


@dataclass
class Labelled:
    guests: list[matching.Guest]
    same: set[frozenset[str]]
    look_alikes: dict[frozenset[str], str]  # pair → kind
    today_keys: dict[str, list[tuple[str, str]]]  # guest → (match, value) as the SQL builds them


def _post(url: str, operation: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.post(
        f"{url}/api/connector/v1/{operation}",
        json={
            "ClientToken": DEMO_CLIENT_TOKEN,
            "AccessToken": DEMO_ACCESS_TOKEN,
            "Client": "bench",
            **body,
        },
        timeout=120,
    )
    answer.raise_for_status()
    result: dict[str, Any] = answer.json()
    return result


def _all(url: str, operation: str, body: dict[str, Any], key: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        limitation: dict[str, Any] = {"Count": 1000, **({"Cursor": cursor} if cursor else {})}
        page = _post(url, operation, {**body, "Limitation": limitation})
        found += page[key]
        cursor = page.get("Cursor")
        if not page[key] or cursor is None:
            return found


def labelled_set(url: str) -> Labelled:
    """The guests and the truth of property 0, over HTTP."""
    (truth,) = httpx.get(url + "/_admin/duplicates", timeout=60).json()[:1]
    chain = truth["chain_id"]
    customers = _all(
        url, "customers/getAll", {"ChainIds": [chain], "Extent": {"Customers": True}}, "Customers"
    )
    addresses = _all(url, "addresses/getAll", {"ChainIds": [chain]}, "Addresses")
    country = {a["AccountId"]: a.get("CountryCode") for a in addresses if a.get("IsActive")}
    return from_customers(customers, country, truth["pairs"])


def from_customers(
    customers: list[dict[str, Any]], country: dict[str, str | None], pairs: list[dict[str, Any]]
) -> Labelled:
    guests: list[matching.Guest] = []
    keys: dict[str, list[tuple[str, str]]] = {}
    for c in customers:
        if not c.get("IsActive", True):
            continue
        facts = facts_for(
            {
                "guest_mews_id": c["Id"],
                "email": c.get("Email"),
                "phone": c.get("Phone"),
                "nationality_code": c.get("NationalityCode"),
                "address_country": country.get(c["Id"]),
                "synced_at": None,
            }
        )
        email = None if c.get("HasOtaEmail") else facts["email_normalized"]
        born = date.fromisoformat(c["BirthDate"][:10]) if c.get("BirthDate") else None
        guests.append(
            matching.Guest(
                c["Id"], c.get("FirstName"), c.get("LastName"), born, email, facts["phone_e164"]
            )
        )
        keys[c["Id"]] = today_keys(c, email, facts["phone_e164"])
    same = {frozenset((p["a"], p["b"])) for p in pairs if p["same"]}
    look = {frozenset((p["a"], p["b"])): p["kind"] for p in pairs if not p["same"]}
    return Labelled(guests, same, look, keys)


def today_keys(c: dict[str, Any], email: str | None, phone: str | None) -> list[tuple[str, str]]:
    """The keys of migration 20261126010300: e-mail (no OTA relay), E.164 phone, and
    lower(btrim(first)) || ' ' || lower(btrim(last)) || ' ' || birth date."""
    found = [("email", email), ("phone", phone)]
    first, last, born = c.get("FirstName"), c.get("LastName"), c.get("BirthDate")
    if first is not None and last is not None and born:
        found.append(("name", f"{first.strip().lower()} {last.strip().lower()} {born[:10]}"))
    return [(k, v) for k, v in found if v]


def today(labelled: Labelled) -> set[frozenset[str]]:
    """Pairs of every key group of 2 to 20 active guests."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for guest, keys in labelled.today_keys.items():
        for key in keys:
            groups[key].append(guest)
    pairs: set[frozenset[str]] = set()
    for members in groups.values():
        if 2 <= len(members) <= 20:
            pairs.update(frozenset((a, b)) for i, a in enumerate(members) for b in members[i + 1 :])
    return pairs


@dataclass
class Scores:
    suggested: int
    precision: float
    recall: float
    f1: float
    look_alikes: int
    look_alike_share: float
    by_kind: Counter[str]


def score(found: set[frozenset[str]], labelled: Labelled) -> Scores:
    right = len(found & labelled.same)
    precision = right / len(found) if found else 1.0
    recall = right / len(labelled.same) if labelled.same else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    looked = [labelled.look_alikes[p] for p in found if p in labelled.look_alikes]
    share = len(looked) / len(labelled.look_alikes) if labelled.look_alikes else 0.0
    return Scores(len(found), precision, recall, f1, len(looked), share, Counter(looked))


def full_pass(guests: list[matching.Guest]) -> dict[str, float]:
    took: dict[str, float] = {}
    start = time.perf_counter()
    prepared = [matching.prepare(g) for g in guests]
    took["prepare"] = time.perf_counter() - start
    model = matching.estimate(prepared)
    took["estimate"] = time.perf_counter() - start - sum(took.values())
    blocking = matching.candidate_pairs(prepared, model.uninformative)
    took["block"] = time.perf_counter() - start - sum(took.values())
    at_least = matching.weight_for(FLOOR, model)
    kept = 0
    for x, y in blocking.pairs:
        kept += matching.compare_reaching(model, prepared[x], prepared[y], at_least) is not None
    took["compare"] = time.perf_counter() - start - sum(took.values())
    took["pairs"] = len(blocking.pairs)
    took["kept"] = kept
    return took


def _in_process(customers: int, rate: float, seed: int) -> list[matching.Guest]:
    from shared.simulator.data import generate

    data = generate(seed=seed, customers=customers, duplicates=rate)
    country = {a["AccountId"]: a["CountryCode"] for a in data.addresses.values()}
    return from_customers(list(data.customers.values()), country, data.planted).guests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=202)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--scale", type=int, nargs="*", default=[100_000])
    parser.add_argument("--runs", type=int, default=1, help="full passes per scale (median)")
    parser.add_argument(
        "--database", type=int, nargs="*", default=[], help="guests loaded into a database"
    )
    parser.add_argument("--changes", type=int, default=200)
    args = parser.parse_args()
    for size in args.database:
        database_report(size, args.rate, args.seed, args.changes)

    with simulator_process(
        "--customers",
        str(args.customers),
        "--duplicates",
        str(args.rate),
        "--seed",
        str(args.seed),
        "--no-rate-limit",
    ) as url:
        labelled = labelled_set(url)
    print(
        f"labelled set: seed {args.seed}, {len(labelled.guests):,} active guests,"
        f" {len(labelled.same):,} people entered twice, {len(labelled.look_alikes):,}"
        " look-alike pairs (other people)"
    )
    start = time.perf_counter()
    found, blocking = matching.match(labelled.guests, threshold=min(THRESHOLDS))
    took = time.perf_counter() - start
    by_threshold = {
        t: {frozenset((s.a, s.b)) for s in found if s.probability >= t} for t in THRESHOLDS
    }
    rows = [
        ("today (exact keys)", score(today(labelled), labelled)),
        (
            f"weighed, p >= {args.threshold}",
            score(
                by_threshold[args.threshold]
                if args.threshold in by_threshold
                else {frozenset((s.a, s.b)) for s in found if s.probability >= args.threshold},
                labelled,
            ),
        ),
    ]
    print(
        f"\n{'matcher':<24} {'suggested':>9} {'precision':>9} {'recall':>7} {'F1':>6}"
        f" {'look-alikes':>12}"
    )
    for name, s in rows:
        print(
            f"{name:<24} {s.suggested:>9,} {s.precision:>9.3f} {s.recall:>7.3f} {s.f1:>6.3f}"
            f" {s.look_alikes:>5} ({s.look_alike_share:>4.1%})"
        )
    for name, s in rows:
        print(f"  look-alikes suggested by {name}: {dict(s.by_kind) or 'none'}")
    print("\nprecision-recall curve (weighed):")
    print(f"{'threshold':>9} {'suggested':>9} {'precision':>9} {'recall':>7} {'look-alikes':>11}")
    for t in THRESHOLDS:
        s = score(by_threshold[t], labelled)
        print(f"{t:>9} {s.suggested:>9,} {s.precision:>9.3f} {s.recall:>7.3f} {s.look_alikes:>11}")
    print(
        f"\nblocking: {len(blocking.pairs):,} candidate pairs; values too common to pair on,"
        f" per key: {blocking.skipped or 'none'}; match() took {took:.1f} s"
    )
    for size in args.scale:
        guests = _in_process(size, args.rate, args.seed + size)
        runs = [full_pass(guests) for _ in range(args.runs)]
        totals = [r["prepare"] + r["estimate"] + r["block"] + r["compare"] for r in runs]
        parts = runs[sorted(range(len(runs)), key=totals.__getitem__)[len(runs) // 2]]
        total = parts["prepare"] + parts["estimate"] + parts["block"] + parts["compare"]
        print(
            f"full pass at {len(guests):,} guests: {total:.1f} s (prepare {parts['prepare']:.1f},"
            f" estimate u {parts['estimate']:.1f}, block {parts['block']:.1f}, compare"
            f" {int(parts['pairs']):,} pairs {parts['compare']:.1f}, {int(parts['kept']):,} of them"
            f" in full: the others could not reach p {FLOOR})"
        )


# -- in a database: the full pass through the API, and one changed guest at a time -------------


CHAIN_ID = "6f1a3b5e-0000-4000-8000-0000000bec11"
BULK_CHANGE = 20_000  # guests changed at once after the first passes


def _load(url: str, guests: list[matching.Guest]) -> list[str]:
    """The guests COPYed into the bench chain; their ids."""
    import uuid

    import psycopg

    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, g.id)) for g in guests]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("insert into public.chains (id, name) values (%s, 'Bench')", (CHAIN_ID,))
        with conn.cursor().copy(
            "copy public.guests (chain_id, mews_id, first_name, last_name, birth_date, email,"
            " phone, mews_updated_utc, raw, raw_hash) from stdin"
        ) as copy:
            for i, g in zip(ids, guests, strict=True):
                copy.write_row(
                    (
                        CHAIN_ID,
                        i,
                        g.first_name,
                        g.last_name or "",
                        g.birth_date,
                        g.email,
                        g.phone,
                        "2026-01-01",
                        "{}",
                        "x",
                    )
                )
        with conn.cursor().copy(
            "copy public.guest_facts (chain_id, guest_mews_id, email_normalized, phone_e164)"
            " from stdin"
        ) as copy:
            for i, g in zip(ids, guests, strict=True):
                copy.write_row((CHAIN_ID, i, g.email, g.phone))
        # what autovacuum does after a bulk insert (off in a bench database): the rows' hint
        # bits set and the statistics made, else the first reader of each row sets its bits
        # and dirties every page; then the load's writes flushed before anything is timed
        # (else the checkpoint they call for runs during the first pass)
        conn.execute("vacuum (analyze) public.guests, public.guest_facts")
        conn.execute("checkpoint")
    return ids


def _job(url: str, ids: list[str], changes: int) -> dict[str, Any]:
    """:func:`_passes` in a process of its own, as the score job runs: it holds what it reads,
    not the bench's generated guests (a fork of a heavier process copies more)."""
    import asyncio

    return asyncio.run(_passes(url, ids, changes))


async def _passes(url: str, ids: list[str], changes: int) -> dict[str, Any]:
    """Over the guests loaded at ``url``: the full pass twice (the second over unchanged guests
    writes nothing), :data:`BULK_CHANGE` guests changed at once and the pass again, then
    ``changes`` guests changed one at a time, each followed by
    :func:`shared.quality.duplicates.update` (the real-time worker's call)."""
    import statistics

    import psycopg

    from shared.db.store import PsycopgTransport, Store
    from shared.quality import duplicates

    found: dict[str, Any] = {}
    store = Store(await PsycopgTransport.connect(url, max_size=2))
    try:
        start = time.perf_counter()
        first = await duplicates.rebuild(store, CHAIN_ID)
        found["first_pass"] = time.perf_counter() - start
        found["first"] = first
        start = time.perf_counter()
        again = await duplicates.rebuild(store, CHAIN_ID)
        found["second_pass"] = time.perf_counter() - start
        found["second"] = again
        print(
            f"  in a database, {len(ids):,} guests: first pass {found['first_pass']:.1f} s"
            f" {first.took}; second {found['second_pass']:.1f} s {again.took}",
            flush=True,
        )
        # a bulk change (an import re-typing many names): the guests' old keys removed and
        # new ones written, a batch of KEYS_BATCH guests a call
        bulk = ids[:: max(1, len(ids) // BULK_CHANGE)]
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "update public.guests set first_name = first_name || 'x'"
                " where mews_id = any (%s::uuid[])",
                (bulk,),
            )
        start = time.perf_counter()
        found["bulk"] = await duplicates.rebuild(store, CHAIN_ID)
        found["bulk_guests"] = len(bulk)
        found["bulk_pass"] = time.perf_counter() - start
        took: list[float] = []
        with psycopg.connect(url, autocommit=True) as conn:
            for n in range(changes):
                target = ids[(n * 7919) % len(ids)]
                conn.execute(
                    "update public.guests set first_name = first_name || 'x' where mews_id = %s",
                    (target,),
                )
                conn.execute(
                    "insert into app.quality_duplicate_queue (chain_id, guest_mews_id)"
                    " values (%s, %s) on conflict do nothing",
                    (CHAIN_ID, target),
                )
                start = time.perf_counter()
                await duplicates.update(store, CHAIN_ID)
                took.append(time.perf_counter() - start)
        took.sort()
        found["change_median_ms"] = statistics.median(took) * 1000
        found["change_p99_ms"] = took[min(len(took) - 1, int(len(took) * 0.99))] * 1000
    finally:
        await store.aclose()
    return found


def database_report(size: int, rate: float, seed: int, changes: int) -> None:
    """Guests generated and loaded into a fresh database here, the passes timed in a new
    process (:func:`_job`)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from bench._db import fresh_database

    guests = _in_process(size, rate, seed + size)
    with fresh_database() as url:
        ids = _load(url, guests)
        del guests
        spawned = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(1, mp_context=spawned) as job:
            found = job.submit(_job, url, ids, changes).result()
    first, again, bulk = found["first"], found["second"], found["bulk"]
    print(
        f"in a database, {first.guests:,} guests: first pass {found['first_pass']:.1f} s"
        f" ({first.found:,} pairs >= {FLOOR}, {first.pairs:,} written, keys of"
        f" {first.keys_written:,} guests); second pass {found['second_pass']:.1f} s"
        f" ({again.pairs} pairs written, {again.pruned} removed, keys of {again.keys_written}"
        f" guests); {found['bulk_guests']:,} guests changed at once: {found['bulk_pass']:.1f} s (keys of"
        f" {bulk.keys_written:,} guests rewritten, {bulk.pairs:,} pairs written, {bulk.pruned:,}"
        f" removed); one changed guest: median {found['change_median_ms']:.1f} ms,"
        f" p99 {found['change_p99_ms']:.1f} ms over {changes} changes"
    )
    for name, one in (("first", first), ("second", again), ("bulk change", bulk)):
        phases = ", ".join(f"{phase} {seconds:.1f}" for phase, seconds in one.took.items())
        print(f"  {name} pass, seconds per phase: {phases}")


if __name__ == "__main__":
    main()
