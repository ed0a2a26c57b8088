"""Pulling customers from the simulator with the real limit and a realistic latency.

    python -m bench.pull [--customers 50000] [--runs 3] [--latency-ms 300] [--per-item-ms 0.2]

Concurrent CreatedUtc windows through the client and the shared Postgres budget (no mirror
writes: bench/backfill.py measures those). Prints rows/s, the share of the rate ceiling
(200 requests / 30 s × 1000 rows), and 429s seen by the client and the server; medians of runs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import httpx

from bench._db import LOCAL_SERVER, fresh_database
from bench._sim import reset_stats, simulator_process, stats
from shared.db.store import PsycopgTransport, Store
from shared.mews.client import MewsClient
from shared.mews.ratelimit import PostgresRateLimiter
from shared.mews.windows import plan_windows
from shared.settings import load_settings


async def pull(url: str, db: str, concurrency: int, limit: int, window: float) -> dict[str, Any]:
    settings = load_settings(mews_platform_url=url)
    store = Store(await PsycopgTransport.connect(db, max_size=4))
    limiter = PostgresRateLimiter(
        store,
        settings.mews_access_token.get_secret_value(),
        limit=limit,
        window_seconds=window,
        guard_seconds=0.3 if window < 30 else 0.5,
    )
    try:
        async with httpx.AsyncClient(timeout=120) as http:
            client = MewsClient.from_settings(settings, http, limiter)
            config = await client.configuration()
            windows = plan_windows(config.enterprise.created_utc, config.now_utc)
            gate = asyncio.Semaphore(concurrency)
            rows = 0

            async def one(w: Any) -> None:
                nonlocal rows
                async with gate:
                    async for page in client.customers(
                        chain_ids=[config.enterprise.chain_id], created_utc=w.filter()
                    ):
                        rows += len(page.items)

            started = time.perf_counter()
            await asyncio.gather(*(one(w) for w in windows))
            seconds = time.perf_counter() - started
    finally:
        await store.aclose()
    return {
        "rows": rows,
        "seconds": seconds,
        "requests": client.stats.requests,
        "client_429": client.stats.rate_limited,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=300)
    parser.add_argument("--per-item-ms", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--server-url", default=LOCAL_SERVER)
    args = parser.parse_args()
    latency = ["--latency-ms", str(args.latency_ms), "--per-item-ms", str(args.per_item_ms)]
    print(
        f"pull of {args.customers:,} customers, latency {args.latency_ms} ms + {args.per_item_ms} ms/item, "
        f"concurrency {args.concurrency}, median of {args.runs} runs"
    )
    print(
        f"{'limit':22} {'rows/s':>9} {'ceiling':>8} {'seconds':>8} {'requests':>9} {'429 client':>10} {'429 server':>10} {'max/window':>10}"
    )
    for label, limit, window in (
        ("200 / 30 s (real)", 200, 30.0),
        ("20 / 3 s (same rate)", 20, 3.0),
    ):
        runs = []
        with simulator_process(
            "--customers",
            str(args.customers),
            *latency,
            "--rate-limit",
            str(limit),
            "--rate-window",
            str(window),
        ) as url:
            for _ in range(args.runs):
                reset_stats(url)
                with fresh_database(args.server_url) as db:
                    result = asyncio.run(pull(url, db, args.concurrency, limit, window))
                sim = stats(url)
                result |= {"server_429": sim["rate_limited"], "max_in_window": sim["max_in_window"]}
                runs.append(result)
        rate = statistics.median(r["rows"] / r["seconds"] for r in runs)
        ceiling = limit / window * 1000
        print(
            f"{label:22} {rate:9,.0f} {rate / ceiling:8.0%} {statistics.median(r['seconds'] for r in runs):8.2f} "
            f"{runs[0]['requests']:9} {sum(r['client_429'] for r in runs):10} {sum(r['server_429'] for r in runs):10} "
            f"{max(r['max_in_window'] for r in runs):10}"
        )


if __name__ == "__main__":
    main()
