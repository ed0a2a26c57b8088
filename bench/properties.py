"""Many properties through one deployment: the first load of N properties × C customers, each
property its own AccessToken with the real limit (200 per 30 s), served by the same fleet the
scheduled functions run (claims, one run per connection, each on its own token's budget).

Prints, side by side in one run: one property alone, then all N at once (one invocation
serving ``--concurrency`` connections at a time, or ``--instances`` invocations side by side):
total rows/s against N × the one-property figure, each token's share of the ceiling (200
requests per 30 s × 1,000 rows = 6,667 rows/s), the slowest and median property's time to be
loaded (its lag), requests and 429s.

    python -m bench.properties --properties 20 --customers 10000
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import httpx
from cryptography.fernet import Fernet

from bench._db import fresh_database
from bench._sim import reset_stats, simulator_process, stats
from shared.connections import jobs
from shared.connections.fleet import ConnectionPass, FleetOptions, FleetResult, run_fleet
from shared.connections.registry import register_manual
from shared.db.connect import open_store
from shared.settings import Settings, load_settings
from shared.sync.entities import SPECS

CEILING = 200 / 30 * 1000  # rows/s per token: 200 requests per 30 s, 1,000 rows each


def _properties(url: str) -> list[dict[str, Any]]:
    answer = httpx.get(url + "/_admin/properties", timeout=30).json()
    found: list[dict[str, Any]] = answer["properties"] if isinstance(answer, dict) else answer
    return found


async def _load(
    sim_url: str, properties: list[dict[str, Any]], concurrency: int, instances: int
) -> dict[str, Any]:
    """First load of the customers of ``properties`` into a fresh database; figures."""
    with fresh_database() as database_url:
        settings: Settings = load_settings(
            database_url=database_url,
            mews_platform_url=sim_url,
            mews_access_token="",
            token_encryption_key=Fernet.generate_key().decode(),
        )
        stores = [await open_store(settings) for _ in range(instances)]
        try:
            for prop in properties:
                await register_manual(stores[0], settings, prop["access_token"], prop["name"])
            reset_stats(sim_url)
            started = time.monotonic()
            finished: dict[str, float] = {}

            async def invocation(index: int) -> FleetResult:
                work = jobs.backfill([SPECS["customers"]])

                async def timed(store: Any, p: ConnectionPass) -> None:
                    await work(store, p)
                    finished[p.connection.id] = time.monotonic() - started

                options = FleetOptions(budget_seconds=3600, concurrency=concurrency)
                return await run_fleet(stores[index], settings, "backfill", timed, options)

            results = await asyncio.gather(*(invocation(i) for i in range(instances)))
            wall = time.monotonic() - started
        finally:
            for store in stores:
                await store.aclose()
    outcomes = [o for r in results for o in r.outcomes]
    rows = sum(o.counts.get("customers_fetched", 0) for o in outcomes)
    served = stats(sim_url)
    per_token: dict[str, dict[str, Any]] = served.get("per_token") or {}
    lags = sorted(finished.values())
    return {
        "properties": len(properties),
        "statuses": sorted({o.status for o in outcomes}),
        "rows": rows,
        "wall": wall,
        "rows_per_s": rows / wall if wall else 0.0,
        "per_token_rows_per_s": rows / wall / len(properties) if wall else 0.0,
        "slowest_lag": lags[-1] if lags else float("nan"),
        "median_lag": statistics.median(lags) if lags else float("nan"),
        "requests": served.get("requests"),
        "rate_limited": served.get("rate_limited"),
        "max_in_window": max(
            (int(t.get("max_in_window", 0)) for t in per_token.values()), default=0
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--properties", type=int, default=20)
    parser.add_argument("--customers", type=int, default=10_000, help="per property")
    parser.add_argument("--latency-ms", type=float, default=300.0)
    parser.add_argument("--per-item-ms", type=float, default=0.2)
    parser.add_argument(
        "--concurrency", type=int, default=20, help="connections at once, per invocation"
    )
    parser.add_argument("--instances", type=int, default=1, help="invocations side by side")
    args = parser.parse_args()
    with simulator_process(
        "--properties",
        str(args.properties),
        "--customers",
        str(args.customers),
        "--latency-ms",
        str(args.latency_ms),
        "--per-item-ms",
        str(args.per_item_ms),
        "--rate-limit",
        "200",
        startup_timeout=600,
    ) as sim_url:
        properties = [p for p in _properties(sim_url) if not p.get("is_portfolio")]
        one = asyncio.run(_load(sim_url, properties[1:2], 1, 1))
        many = asyncio.run(_load(sim_url, properties, args.concurrency, args.instances))
    print(
        f"first load of customers, {args.customers:,} per property, Mews latency "
        f"{args.latency_ms:g} ms + {args.per_item_ms:g} ms/item, real limit 200/30 s per token"
    )
    header = (
        f"{'properties':>10} {'rows':>9} {'wall s':>7} {'rows/s':>8} {'per token':>9}"
        f" {'of ceiling':>10} {'slowest lag':>11} {'median lag':>10} {'requests':>8}"
        f" {'max/30s':>7} {'429s':>5}"
    )
    print(header)
    for figures in (one, many):
        print(
            f"{figures['properties']:>10} {figures['rows']:>9,} {figures['wall']:>7.1f}"
            f" {figures['rows_per_s']:>8,.0f} {figures['per_token_rows_per_s']:>9,.0f}"
            f" {figures['per_token_rows_per_s'] / CEILING:>10.1%} {figures['slowest_lag']:>10.1f}s"
            f" {figures['median_lag']:>9.1f}s {figures['requests']:>8} {figures['max_in_window']:>7}"
            f" {figures['rate_limited']:>5}"
        )
    ideal = one["rows_per_s"] * many["properties"]
    print(
        f"total {many['rows_per_s']:,.0f} rows/s against {many['properties']} × one property ="
        f" {ideal:,.0f} rows/s: {many['rows_per_s'] / ideal:.0%}; statuses {many['statuses']}"
    )


if __name__ == "__main__":
    main()
