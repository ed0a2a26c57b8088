"""Webhook store-and-ack latency, and how fast the inbox drains.

    python -m bench.webhook [--requests 2000] [--events 3000]

1. ``mews_webhook`` through functions-framework's WSGI test client on a fresh database: the
   time from request to 202 (secret check, raw body stored with its hash): p50, p99, max.
2. The inbox: ``--events`` CustomerUpdated events (10 per message, a third of them duplicates)
   for customers the simulator (no latency, no limit) knows, drained by process_events; events/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time

import functions_framework
import httpx

from bench._db import LOCAL_SERVER, fresh_database
from bench._sim import simulator_process
from functions import runtime
from shared.db.store import PsycopgTransport, Store
from shared.mews.client import MewsClient
from shared.mews.ratelimit import UnlimitedRateLimiter
from shared.settings import load_settings
from shared.sync.engine import SyncEngine
from shared.sync.events import process_events
from shared.sync.runs import recorded_run

SECRET = "bench-secret"


def ack_latency(db: str, requests: int) -> list[float]:
    runtime.reset(database_url=db, webhook_secret=SECRET, log_level="WARNING")
    client = functions_framework.create_app(  # type: ignore[no-untyped-call]
        target="mews_webhook", source="functions/mews_webhook.py"
    ).test_client()
    body = json.dumps(
        {
            "EnterpriseId": "8c7e9a52-0000-4000-8000-000000000001",
            "IntegrationId": "1a1a1a1a-0000-4000-8000-000000000001",
            "Events": [
                {
                    "Discriminator": "CustomerUpdated",
                    "Value": {"Id": f"cccc{i:04d}-0000-4000-8000-000000000001"},
                }
                for i in range(10)
            ],
        }
    )
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        answer = client.post(f"/?Token={SECRET}", data=body, content_type="application/json")
        times.append(time.perf_counter() - started)
        assert answer.status_code == 202
    runtime.reset()
    return times


async def drain(url: str, db: str, events: int) -> tuple[float, dict[str, int]]:
    settings = load_settings(mews_platform_url=url)
    store = Store(await PsycopgTransport.connect(db, max_size=4))
    try:
        async with httpx.AsyncClient(timeout=60) as http:
            engine = SyncEngine(
                store, MewsClient.from_settings(settings, http, UnlimitedRateLimiter())
            )
            scope = await engine.scope()
            ids = [
                c.id
                async for page in engine.client.customers(chain_ids=[scope.chain_id])
                for c in page.items
            ]
            rng = random.Random(5)
            chosen = [rng.choice(ids) for _ in range(events)]
            for i in range(0, events, 10):
                message = {
                    "EnterpriseId": scope.enterprise_id,
                    "IntegrationId": scope.enterprise_id,
                    "Events": [
                        {"Discriminator": "CustomerUpdated", "Value": {"Id": c}}
                        for c in chosen[i : i + 10]
                    ],
                }
                await store.call(
                    "inbox_add", p_source="general_webhook", p_body_raw=json.dumps(message)
                )
            started = time.perf_counter()
            async with recorded_run(store, "process_events") as run:
                await process_events(store, engine, run, batch_size=500)
            return time.perf_counter() - started, dict(run.counts)
    finally:
        await store.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--server-url", default=LOCAL_SERVER)
    args = parser.parse_args()
    with fresh_database(args.server_url) as db:
        times = sorted(ack_latency(db, args.requests))
    ms = [t * 1000 for t in times]
    print(
        f"store-and-ack over {args.requests} webhooks: p50 {statistics.median(ms):.2f} ms, "
        f"p99 {ms[int(len(ms) * 0.99) - 1]:.2f} ms, max {ms[-1]:.2f} ms"
    )
    with (
        simulator_process("--customers", "5000", "--no-rate-limit") as url,
        fresh_database(args.server_url) as db,
    ):
        seconds, counts = asyncio.run(drain(url, db, args.events))
    print(
        f"inbox: {args.events} events in {args.events // 10} messages drained in {seconds:.2f} s = "
        f"{args.events / seconds:,.0f} events/s ({counts.get('customers_ids', 0)} distinct customers fetched, "
        f"{counts.get('inbox_completed', 0)} messages completed)"
    )


if __name__ == "__main__":
    main()
