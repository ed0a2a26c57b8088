"""Pushing staff edits to Mews with a realistic latency and the real request limit.

    python -m bench.push [--customers 2000] [--edits 100] [--runs 5] [--latency-ms 300]

Per run, on a fresh database: the simulator's customers are loaded (not timed), a staff member
edits ``--edits`` guests as the frontend does (an UPDATE of the editable columns as
``authenticated`` through row-level security, the trigger records the bases: every guest gets a
new note and phone, every tenth also has its e-mail cleared, which goes through
``accounts/update``), the simulator's counters and windows are reset, then ``push_changes`` runs
end to end under the shared Postgres budget (200 requests / 30 s) with the product's defaults
(``--concurrency`` overrides push_changes' own).
Prints the median seconds, edits pushed/s, requests (client and server, by operation), 429s
and the most requests the simulator saw in one window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from datetime import timedelta
from typing import Any

import httpx
import psycopg

from bench._db import LOCAL_SERVER, fresh_database
from bench._sim import reset_stats, simulator_process, stats
from shared.db.store import PsycopgTransport, Store
from shared.logs import configure_logging
from shared.mews.client import MewsClient
from shared.mews.ratelimit import PostgresRateLimiter, UnlimitedRateLimiter
from shared.settings import load_settings
from shared.sync.engine import SyncEngine
from shared.sync.entities import SPECS
from shared.sync.push import push_changes
from shared.sync.runs import recorded_run

LIMIT, WINDOW = 200, 30.0


async def load(url: str, db: str) -> tuple[str, list[str]]:
    """Mirror the simulator's customers (no budget: setup, not measured); the enterprise and
    the ids of active guests."""
    settings = load_settings(mews_platform_url=url)
    store = Store(await PsycopgTransport.connect(db, max_size=4))
    try:
        async with httpx.AsyncClient(timeout=120) as http:
            client = MewsClient.from_settings(settings, http, UnlimitedRateLimiter())
            engine = SyncEngine(store, client, lag=timedelta(0))
            await engine.backfill(SPECS["customers"])
            scope = await engine.scope()
    finally:
        await store.aclose()
    with psycopg.connect(db) as conn:
        ids = [
            str(row[0])
            for row in conn.execute(
                "select mews_id from public.guests where is_active and merge_target_id is null"
                " and email is not null order by mews_id"
            )
        ]
    return scope.enterprise_id, ids


def staff_edits(db: str, enterprise_id: str, ids: list[str]) -> None:
    """A staff member of the enterprise edits each guest, one committed request per edit."""
    user = str(uuid.uuid4())
    email = f"{user[:8]}@hotel.example"
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("insert into auth.users (id, email) values (%s, %s)", (user, email))
        conn.execute("insert into public.app_users (id, email) values (%s, %s)", (user, email))
        conn.execute(
            "insert into public.memberships (user_id, enterprise_id, role)"
            " values (%s, %s, 'staff')",
            (user, enterprise_id),
        )
        claims = json.dumps({"role": "authenticated", "sub": user})
        for i, mews_id in enumerate(ids):
            clear = ", email = null" if i % 10 == 0 else ""
            with conn.transaction():
                conn.execute("set local role authenticated")
                conn.execute("select set_config('request.jwt.claims', %s, true)", (claims,))
                updated = conn.execute(
                    f"update public.guests set notes = %s, phone = %s{clear} where mews_id = %s",
                    (f"bench note {i}", f"+420 777 {i:06d}", mews_id),
                )
                assert updated.rowcount == 1, "the staff member could not edit the guest"


async def push(url: str, db: str, concurrency: int | None) -> dict[str, Any]:
    settings = load_settings(mews_platform_url=url)
    store = Store(await PsycopgTransport.connect(db, max_size=8))
    limiter = PostgresRateLimiter(
        store, settings.mews_access_token.get_secret_value(), limit=LIMIT, window_seconds=WINDOW
    )
    progressed: list[int] = []
    try:
        async with httpx.AsyncClient(timeout=120) as http:
            client = MewsClient.from_settings(settings, http, limiter)
            engine = SyncEngine(store, client, lag=timedelta(0))
            await engine.scope()  # configuration/get: the job's setup, not the push
            # counters and windows: the push starts with a fresh budget on both sides
            await asyncio.to_thread(reset_stats, url)
            requests_before = client.stats.requests
            started = time.perf_counter()
            async with recorded_run(store, "push_changes") as run:
                if concurrency is None:
                    await push_changes(store, engine, run, progress=progressed.append)
                else:
                    await push_changes(
                        store, engine, run, progress=progressed.append, concurrency=concurrency
                    )
            seconds = time.perf_counter() - started
    finally:
        await store.aclose()
    return {
        "seconds": seconds,
        "status": run.status,
        "pushed": run.counts.get("pushed", 0),
        "progress": sum(progressed),
        "requests": client.stats.requests - requests_before,
        "client_429": client.stats.rate_limited,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--edits", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=300)
    parser.add_argument(
        "--concurrency", type=int, default=None, help="push_changes' own default when omitted"
    )
    parser.add_argument("--server-url", default=LOCAL_SERVER)
    args = parser.parse_args()
    configure_logging(level="WARNING")
    print(
        f"push of {args.edits} staff edits ({args.customers:,} customers mirrored), latency "
        f"{args.latency_ms:g} ms, limit {LIMIT} / {WINDOW:g} s, median of {args.runs} runs"
    )
    runs = []
    with simulator_process(
        "--customers",
        str(args.customers),
        "--latency-ms",
        str(args.latency_ms),
        "--rate-limit",
        str(LIMIT),
        "--rate-window",
        str(WINDOW),
    ) as url:
        for _ in range(args.runs):
            with fresh_database(args.server_url) as db:
                enterprise_id, ids = asyncio.run(load(url, db))
                if len(ids) < args.edits:
                    raise SystemExit(f"only {len(ids)} editable guests; raise --customers")
                staff_edits(db, enterprise_id, ids[: args.edits])
                result = asyncio.run(push(url, db, args.concurrency))
            sim = stats(url)
            result |= {
                "server_requests": sim["requests"],
                "server_429": sim["rate_limited"],
                "max_in_window": sim["max_in_window"],
                "operations": sim["operations"],
            }
            runs.append(result)
            print(
                f"  {result['seconds']:6.2f} s  {result['status']:9} pushed {result['pushed']:4}"
                f"  progress {result['progress']:4}  requests {result['requests']:4}"
                f"  429 {result['client_429']}/{result['server_429']}"
                f"  max/window {result['max_in_window']}"
            )
    seconds = statistics.median(r["seconds"] for r in runs)
    last = runs[-1]
    operations = ", ".join(f"{k} {v}" for k, v in sorted(last["operations"].items()))
    print(
        f"median {seconds:.2f} s = {args.edits / seconds:,.1f} edits pushed/s; requests "
        f"{last['requests']} ({operations}); 429 client {sum(r['client_429'] for r in runs)}, "
        f"server {sum(r['server_429'] for r in runs)}; max in one window "
        f"{max(r['max_in_window'] for r in runs)} (limit {LIMIT})"
    )


if __name__ == "__main__":
    main()
