"""How long the guarded upsert takes for a page of 1000 guests (``upsert_guests(p_scope_id,
p_records)``: the records as Mews sent them, the typed columns derived in SQL), over the psycopg
transport.

    python -m bench.upsert [--runs 15] [--server-url postgresql://postgres@127.0.0.1:5432/postgres]

Prints the median and spread of: inserting a new page, overwriting it with newer records, and
replaying it unchanged (the guard says no to every row).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from bench._db import LOCAL_SERVER, fresh_database
from shared.db.store import PsycopgTransport, Store

CHAIN = "5b3c1f00-0000-4000-8000-000000000001"


def page(ids: list[str], updated: datetime) -> list[dict[str, Any]]:
    """A page of customers as ``customers/getAll`` returns them."""
    stamp = updated.strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        {
            "Id": mews_id,
            "ChainId": CHAIN,
            "Number": str(100000 + n),
            "FirstName": f"Guest{n}",
            "LastName": "Müller",
            "Email": f"guest{n}@example.com",
            "Phone": "+420 777 123 456",
            "BirthDate": "1980-05-17",
            "NationalityCode": "CZ",
            "UpdatedUtc": stamp,
            "Classifications": [],
            "Options": [],
            "IsActive": True,
        }
        for n, mews_id in enumerate(ids)
    ]


async def measure(url: str, runs: int) -> dict[str, list[float]]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("insert into public.chains (id, name) values (%s, 'Bench')", (CHAIN,))
    store = Store(await PsycopgTransport.connect(url, max_size=1))
    timings: dict[str, list[float]] = {}
    base = datetime(2026, 1, 1, tzinfo=UTC)
    try:
        for _ in range(runs):
            ids = [str(uuid.uuid4()) for _ in range(1000)]
            for label, records in (
                ("insert", page(ids, base)),
                ("newer", page(ids, base + timedelta(hours=1))),
                ("replay", page(ids, base + timedelta(hours=1))),
            ):
                started = time.perf_counter()
                result = await store.call("upsert_guests", p_scope_id=CHAIN, p_records=records)
                timings.setdefault(label, []).append((time.perf_counter() - started) * 1000)
                assert result["received"] == 1000
    finally:
        await store.aclose()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--server-url", default=LOCAL_SERVER)
    args = parser.parse_args()
    with fresh_database(args.server_url) as url:
        timings = asyncio.run(measure(url, args.runs))
    print(f"guarded upsert, page of 1000 guests, {args.runs} runs (psycopg transport)")
    for label, values in timings.items():
        print(
            f"  {label:14s} median {statistics.median(values):7.1f} ms"
            f"   min {min(values):7.1f} ms   max {max(values):7.1f} ms"
            f"   ({1000 / statistics.median(values) * 1000:,.0f} rows/s)"
        )


if __name__ == "__main__":
    main()
