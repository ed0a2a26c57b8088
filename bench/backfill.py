"""First-load throughput against the simulator, side by side in one run.

    python -m bench.backfill [--customers 50000] [--runs 3]

For each run, on a fresh database:
1. the engine (concurrent CreatedUtc windows inside the shared Postgres budget) against the
   simulator with the real limit (200 per sliding 30 s) and 300 ms + 0.2 ms/item latency;
2. the same with the limit scaled down ×10 (20 per 3 s: the same 6,667 rows/s ceiling, but a
   50,000-guest load is long enough to be limit-bound rather than finished inside one burst);
3. a plain walk: one cursor at a time, window after window, same latency;
4. the engine with the limit lifted and no latency (the simulator, in its own process, shares
   the machine's two cores with us and Postgres);
5. our own overhead alone: the same pages replayed from memory through parse + validate + map +
   upsert, with the engine's concurrency.
Prints guests/s, the share of the 6,667 rows/s ceiling, 429s, and peak RSS; medians of runs.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import time
from typing import Any

import httpx

from bench._db import LOCAL_SERVER, fresh_database
from bench._sim import reset_stats, simulator_process, stats
from shared.db.store import PsycopgTransport, Store
from shared.mews.client import MewsClient
from shared.mews.ratelimit import PostgresRateLimiter, RateLimiter, UnlimitedRateLimiter
from shared.mews.windows import plan_windows
from shared.settings import load_settings
from shared.sync.engine import SyncEngine

CEILING = 200 / 30 * 1000  # rows/s per token at 1000 rows per request


async def engine_load(
    url: str, db: str, limiter_kind: str, *, limit: int, window: float, concurrency: int
) -> dict[str, Any]:
    settings = load_settings(mews_platform_url=url)
    store = Store(await PsycopgTransport.connect(db, max_size=concurrency + 2))
    limiter: RateLimiter
    if limiter_kind == "shared":
        limiter = PostgresRateLimiter(
            store,
            settings.mews_access_token.get_secret_value(),
            limit=limit,
            window_seconds=window,
            guard_seconds=0.3 if window < 30 else 0.5,
        )
    else:
        limiter = UnlimitedRateLimiter()
    try:
        async with httpx.AsyncClient(
            timeout=120, limits=httpx.Limits(max_connections=concurrency * 2)
        ) as http:
            client = MewsClient.from_settings(settings, http, limiter)
            engine = SyncEngine(store, client, concurrency=concurrency)
            await engine.scope()
            started = time.perf_counter()
            counts = await engine.backfill("customers")
            seconds = time.perf_counter() - started
    finally:
        await store.aclose()
    return {
        "rows": counts.fetched,
        "seconds": seconds,
        "rows_per_s": counts.fetched / seconds,
        "requests": client.stats.requests,
        "client_429": client.stats.rate_limited,
    }


async def replay_pages(url: str, db: str, concurrency: int) -> dict[str, Any]:
    """Fetch every customers page once, then time only our side: parse, validate, map, upsert."""
    import orjson

    from shared.mews.client import Page, parse_records
    from shared.mews.models import Customer

    settings = load_settings(mews_platform_url=url)
    bodies: list[bytes] = []
    async with httpx.AsyncClient(timeout=120) as http:
        client = MewsClient.from_settings(settings, http, UnlimitedRateLimiter())
        config = await client.configuration()
        tokens = {
            "ClientToken": settings.mews_client_token.get_secret_value(),
            "AccessToken": settings.mews_access_token.get_secret_value(),
            "Client": "bench",
        }
        for window in plan_windows(config.enterprise.created_utc, config.now_utc):
            cursor = None
            while True:
                limitation: dict[str, Any] = {"Count": 1000} | (
                    {"Cursor": cursor} if cursor else {}
                )
                body = {
                    **tokens,
                    "ChainIds": [config.enterprise.chain_id],
                    "CreatedUtc": window.filter(),
                    "ActivityStates": ["Active", "Deleted"],
                    "Extent": {"Customers": True},
                    "Limitation": limitation,
                }
                response = await http.post(url + "/api/connector/v1/customers/getAll", json=body)
                bodies.append(response.content)
                cursor = response.json()["Cursor"]
                if cursor is None or len(response.json()["Customers"]) < 1000:
                    break
    store = Store(await PsycopgTransport.connect(db, max_size=concurrency + 2))
    try:
        async with httpx.AsyncClient() as http:
            engine = SyncEngine(
                store, MewsClient.from_settings(settings, http, UnlimitedRateLimiter())
            )
            await engine.scope()
            gate = asyncio.Semaphore(concurrency)
            rows = 0

            async def one(body: bytes) -> None:
                nonlocal rows
                async with gate:
                    data = orjson.loads(body)
                    items, raws, rejected = parse_records(Customer, data["Customers"])
                    counts = await engine.ingest(
                        "customers", Page(items, raws, rejected, data["Cursor"]), None
                    )
                    rows += counts.fetched

            started = time.perf_counter()
            await asyncio.gather(*(one(b) for b in bodies))
            seconds = time.perf_counter() - started
    finally:
        await store.aclose()
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds, "requests": len(bodies)}


async def plain_walk(url: str) -> dict[str, Any]:
    """One cursor at a time, window after window: what a naive loop does."""
    settings = load_settings(mews_platform_url=url)
    async with httpx.AsyncClient(timeout=120) as http:
        client = MewsClient.from_settings(settings, http, UnlimitedRateLimiter())
        config = await client.configuration()
        started = time.perf_counter()
        rows = 0
        oldest = config.enterprise.created_utc
        for window in plan_windows(oldest, config.now_utc):
            async for page in client.customers(
                chain_ids=[config.enterprise.chain_id], created_utc=window.filter()
            ):
                rows += len(page.items)
        seconds = time.perf_counter() - started
    return {
        "rows": rows,
        "seconds": seconds,
        "rows_per_s": rows / seconds,
        "requests": client.stats.requests,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--server-url", default=LOCAL_SERVER)
    args = parser.parse_args()
    n = str(args.customers)
    results: dict[str, list[dict[str, Any]]] = {}
    scenarios = [
        (
            "engine, real limit 200/30s",
            ["--latency-ms", "300", "--per-item-ms", "0.2"],
            "shared",
            200,
            30.0,
        ),
        (
            "engine, limit scaled 20/3s",
            [
                "--latency-ms",
                "300",
                "--per-item-ms",
                "0.2",
                "--rate-limit",
                "20",
                "--rate-window",
                "3",
            ],
            "shared",
            20,
            3.0,
        ),
        (
            "plain one-cursor walk",
            ["--latency-ms", "300", "--per-item-ms", "0.2"],
            "plain",
            200,
            30.0,
        ),
        ("engine, limit lifted, no latency", ["--no-rate-limit"], "unlimited", 200, 30.0),
        ("own overhead (pages replayed)", ["--no-rate-limit"], "replay", 200, 30.0),
    ]
    for name, sim_args, kind, limit, window in scenarios:
        with simulator_process("--customers", n, *sim_args) as url:
            for _ in range(args.runs):
                reset_stats(url)
                with fresh_database(args.server_url) as db:
                    if kind == "plain":
                        result = asyncio.run(plain_walk(url))
                    elif kind == "replay":
                        result = asyncio.run(replay_pages(url, db, args.concurrency))
                    else:
                        result = asyncio.run(
                            engine_load(
                                url,
                                db,
                                kind,
                                limit=limit,
                                window=window,
                                concurrency=args.concurrency,
                            )
                        )
                sim = stats(url)
                result["server_429"] = sim["rate_limited"]
                result["max_in_window"] = sim["max_in_window"]
                results.setdefault(name, []).append(result)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"first load of {args.customers:,} customers, median of {args.runs} runs, concurrency {args.concurrency}"
    )
    print(
        f"{'scenario':36} {'guests/s':>10} {'ceiling':>8} {'seconds':>8} {'requests':>9} {'429s':>5} {'max/window':>10}"
    )
    medians = {}
    for name, runs in results.items():
        rate = statistics.median(r["rows_per_s"] for r in runs)
        medians[name] = rate
        share = "" if "lifted" in name or "own" in name else f"{rate / CEILING:7.0%}"
        print(
            f"{name:36} {rate:10,.0f} {share:>8} {statistics.median(r['seconds'] for r in runs):8.2f} "
            f"{runs[0]['requests']:9} {max(r['server_429'] for r in runs):5} {max(r['max_in_window'] for r in runs):10}"
        )
    print(
        f"engine / plain walk (real limit): {medians['engine, real limit 200/30s'] / medians['plain one-cursor walk']:.1f}x; "
        f"(scaled limit): {medians['engine, limit scaled 20/3s'] / medians['plain one-cursor walk']:.1f}x"
    )
    print(f"peak RSS of this process: {rss_mb:.0f} MB")


if __name__ == "__main__":
    main()
