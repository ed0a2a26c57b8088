"""First-load benchmarks against the simulator (in its own process), each load in a child
process of its own so that its peak RSS is the loader's alone.

    python -m bench.backfill [--part NAME ...] [options]

Parts (all by default, except ``memory``, which needs a million generated customers):

- ``throughput``: a first load of ``--customers`` customers (median of ``--runs``): the engine
  with the real limit (200 per sliding 30 s) and 300 ms + 0.2 ms/item latency; the same limit
  scaled ×10 down (20 per 3 s: the same 6,667 rows/s ceiling); a plain one-cursor walk; the
  engine with the limit lifted and no latency.
- ``overhead``: our own overhead alone: the same recorded ``customers/getAll`` pages replayed
  from memory through the engine's ingest (parse + validate + upsert of the records as Mews sent
  them, the typed columns derived in SQL), with the engine's concurrency, each run on a fresh
  database.
- ``entities``: for each of ``--entity-sizes`` customers (300 ms + 0.2 ms/item, real limit): a
  first load of customers only, and of every entity; their requests and their ratio to the lower
  bound set by the rate limit and the latency. Every entity is loaded the way the jobs and the
  CLI do (side by side, ``concurrent``: identity documents after customers, the rest at once)
  and, for comparison, one entity after another (``sequential``, as they did before).
- ``memory``: peak RSS of a first load of each of ``--memory-sizes`` customers (limit lifted,
  no latency), and the spread between them.
- ``ceiling``: a first load of ``--ceiling-customers`` customers with the real limit: rows/s,
  share of the ceiling, 429s seen by the client and the simulator.
- ``score``: the score command right after a first load of ``--score-customers`` customers,
  their addresses and identity documents (limit lifted, no latency; autovacuum off, so nothing
  but the jobs themselves analyzes), then again with nothing changed: the whole job each time
  (rule set, ANALYZE of what is stale, normalisation and facts of every guest, duplicates, the
  scoring pass), as ``guesthub score`` runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from bench._db import LOCAL_SERVER, fresh_database
from bench._sim import reset_stats, simulator_process, stats

CEILING = 200 / 30 * 1000  # rows/s per token at 1000 rows per request
LATENCY = ["--latency-ms", "300", "--per-item-ms", "0.2"]
PARTS = ("throughput", "overhead", "entities", "memory", "ceiling", "score")
DEFAULT_PARTS = ("throughput", "overhead", "entities", "ceiling", "score")
ENTITY_LOADS = ("customers", "sequential", "concurrent")


# -- the loader, in a child process ----------------------------------------------------------


def load_in_child(config: dict[str, Any]) -> dict[str, Any]:
    """Run :func:`child_load` with ``config`` in a fresh interpreter; its JSON result."""
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "bench.backfill", "--child", json.dumps(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def child_main(config: dict[str, Any]) -> None:
    """The child: the load, then one JSON line with its figures and this process's peak RSS."""
    import resource

    sampler = RssSampler()
    work = replay(config) if config.get("replay") else child_load(config)
    result = asyncio.run(sampler.around(work))
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["rss_samples_mb"] = sampler.samples
    print(json.dumps(result))


class RssSampler:
    """The process's resident set every second while a coroutine runs."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    async def around(self, work: Any) -> Any:
        task = asyncio.create_task(self._sample())
        try:
            return await work
        finally:
            task.cancel()

    async def _sample(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while True:
            with open("/proc/self/statm") as statm:  # noqa: PTH123, ASYNC230 - tiny, procfs
                self.samples.append(round(int(statm.read().split()[1]) * page / 2**20, 1))
            await asyncio.sleep(1)


async def child_load(config: dict[str, Any]) -> dict[str, Any]:
    """A first load of ``config["entities"]`` through the engine's units, side by side as the
    jobs and the CLI do (``mode: concurrent``) or one after another (``sequential``)."""
    import httpx

    from shared.db.store import PsycopgTransport, Store
    from shared.mews.client import MewsClient
    from shared.mews.ratelimit import PostgresRateLimiter, RateLimiter, UnlimitedRateLimiter
    from shared.settings import load_settings
    from shared.sync.engine import SyncEngine
    from shared.sync.entities import entities as specs
    from shared.sync.liveness import engine_units, live_run

    concurrency = config.get("concurrency", 8)
    settings = load_settings(mews_platform_url=config["url"])
    store = Store(await PsycopgTransport.connect(config["db"], max_size=concurrency + 4))
    limiter: RateLimiter = UnlimitedRateLimiter()
    if config.get("limit"):
        window = float(config["window"])
        limiter = PostgresRateLimiter(
            store,
            settings.mews_access_token.get_secret_value(),
            limit=int(config["limit"]),
            window_seconds=window,
            guard_seconds=0.3 if window < 30 else 0.5,
        )
    entities = specs(config["entities"])
    try:
        async with httpx.AsyncClient(
            timeout=120, limits=httpx.Limits(max_connections=max(64, concurrency * 4))
        ) as http:
            client = MewsClient.from_settings(settings, http, limiter)
            engine = SyncEngine(store, client, concurrency=concurrency)
            await engine.scope()
            started = time.perf_counter()
            counts: dict[str, int] = {}

            async def load(spec: Any, run: Any) -> None:
                counts[spec.name] = (await engine.backfill(spec, run)).fetched

            # the units of the jobs and the CLI: side by side (``concurrent``, what they do)
            # or one after another (``sequential``, what they did)
            async with live_run(store, "backfill") as run:
                await engine_units(
                    engine,
                    run,
                    "backfill",
                    entities,
                    load,
                    side_by_side=config.get("mode") == "concurrent",
                )
            seconds = time.perf_counter() - started
    finally:
        await store.aclose()
    return {
        "rows": counts,
        "seconds": seconds,
        "requests": client.stats.requests,
        "client_429": client.stats.rate_limited,
    }


# -- parts -----------------------------------------------------------------------------------


def throughput(args: argparse.Namespace) -> None:
    n = str(args.customers)
    scenarios: list[tuple[str, list[str], dict[str, Any]]] = [
        ("engine, real limit 200/30s", LATENCY, {"limit": 200, "window": 30.0}),
        (
            "engine, limit scaled 20/3s",
            [*LATENCY, "--rate-limit", "20", "--rate-window", "3"],
            {"limit": 20, "window": 3.0},
        ),
        ("plain one-cursor walk", LATENCY, {"plain": True}),
        ("engine, limit lifted, no latency", ["--no-rate-limit"], {}),
    ]
    results: dict[str, list[dict[str, Any]]] = {}
    for name, sim_args, extra in scenarios:
        with simulator_process("--customers", n, *sim_args) as url:
            for _ in range(args.runs):
                reset_stats(url)
                with fresh_database(args.server_url) as db:
                    if extra.get("plain"):
                        result = asyncio.run(plain_walk(url))
                    else:
                        config = {"url": url, "db": db, "entities": ["customers"], **extra}
                        config["concurrency"] = args.concurrency
                        result = load_in_child(config)
                        result["rows"] = result["rows"]["customers"]
                result |= _server(url)
                results.setdefault(name, []).append(result)
    print(
        f"\nfirst load of {args.customers:,} customers, median of {args.runs} runs, concurrency {args.concurrency}"
    )
    print(
        f"{'scenario':36} {'guests/s':>10} {'ceiling':>8} {'seconds':>8} {'requests':>9} {'429s':>5} {'max/window':>10} {'peak RSS':>9}"
    )
    rates = {}
    for name, runs in results.items():
        rate = statistics.median(r["rows"] / r["seconds"] for r in runs)
        rates[name] = rate
        share = "" if "lifted" in name else f"{rate / CEILING:7.0%}"
        rss = max((r.get("peak_rss_mb") or 0) for r in runs)
        print(
            f"{name:36} {rate:10,.0f} {share:>8} {statistics.median(r['seconds'] for r in runs):8.2f} "
            f"{runs[0]['requests']:9} {max(r['server_429'] for r in runs):5} "
            f"{max(r['max_in_window'] for r in runs):10} {rss:8.0f}M"
        )
    walk = rates["plain one-cursor walk"]
    print(
        f"engine / plain walk: real limit {rates['engine, real limit 200/30s'] / walk:.1f}x, "
        f"scaled limit {rates['engine, limit scaled 20/3s'] / walk:.1f}x"
    )


async def plain_walk(url: str) -> dict[str, Any]:
    """One cursor at a time, window after window: what a naive loop does."""
    import httpx

    from shared.mews.client import MewsClient
    from shared.mews.ratelimit import UnlimitedRateLimiter
    from shared.mews.windows import plan_windows
    from shared.settings import load_settings

    settings = load_settings(mews_platform_url=url)
    async with httpx.AsyncClient(timeout=120) as http:
        client = MewsClient.from_settings(settings, http, UnlimitedRateLimiter())
        config = await client.configuration()
        started = time.perf_counter()
        rows = 0
        for window in plan_windows(config.enterprise.created_utc, config.now_utc):
            async for page in client.customers(
                chain_ids=[config.enterprise.chain_id], created_utc=window.filter()
            ):
                rows += len(page.items)
        seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": seconds, "requests": client.stats.requests}


def overhead(args: argparse.Namespace) -> None:
    runs: list[dict[str, Any]] = []
    with simulator_process("--customers", str(args.customers), "--no-rate-limit") as url:
        for _ in range(args.runs):
            with fresh_database(args.server_url) as db:
                config = {"replay": True, "url": url, "db": db, "concurrency": args.concurrency}
                runs.append(load_in_child(config))
    print(
        f"\nown overhead: {args.customers:,} customers in {runs[0]['pages']} recorded pages replayed "
        f"(parse + validate + upsert of the records), concurrency {args.concurrency}, median of {args.runs} runs"
    )
    rates = [r["rows"] / r["seconds"] for r in runs]
    print(
        f"{statistics.median(rates):,.0f} guests/s, {statistics.median(r['seconds'] for r in runs):.2f} s"
        f"   runs (guests/s): {', '.join(f'{x:,.0f}' for x in rates)}"
    )


async def replay(config: dict[str, Any]) -> dict[str, Any]:
    """Fetch every customers page once, then time only our side: the engine's ingest of each
    page (parse, validate, upsert the records)."""
    import httpx
    import orjson

    from shared.db.store import PsycopgTransport, Store
    from shared.mews.client import MewsClient, Page
    from shared.mews.models import Customer
    from shared.mews.ratelimit import UnlimitedRateLimiter
    from shared.settings import load_settings
    from shared.sync.engine import SyncEngine
    from shared.sync.entities import SPECS

    settings = load_settings(mews_platform_url=config["url"])
    bodies = await _recorded_pages(config["url"])
    concurrency = config.get("concurrency", 8)
    store = Store(await PsycopgTransport.connect(config["db"], max_size=concurrency + 2))
    try:
        async with httpx.AsyncClient() as http:
            engine = SyncEngine(
                store, MewsClient.from_settings(settings, http, UnlimitedRateLimiter())
            )
            await engine.scope()
            ingest = engine.ingest
            gate = asyncio.Semaphore(concurrency)
            rows = 0

            async def one(body: bytes) -> None:
                nonlocal rows
                async with gate:
                    data = orjson.loads(body)
                    page = Page(Customer, data["Customers"], data["Cursor"])
                    counts = await ingest(SPECS["customers"], page, None)
                    rows += counts.fetched  # after the await: no update lost

            started = time.perf_counter()
            await asyncio.gather(*(one(b) for b in bodies))
            seconds = time.perf_counter() - started
    finally:
        await store.aclose()
    return {"rows": rows, "seconds": seconds, "pages": len(bodies)}


async def _recorded_pages(url: str) -> list[bytes]:
    """Every ``customers/getAll`` page of a first load, as the simulator sent it."""
    import httpx

    from shared.mews.client import MewsClient
    from shared.mews.ratelimit import UnlimitedRateLimiter
    from shared.mews.windows import plan_windows
    from shared.settings import load_settings

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
                body = {
                    **tokens,
                    "ChainIds": [config.enterprise.chain_id],
                    "CreatedUtc": window.filter(),
                    "ActivityStates": ["Active", "Deleted"],
                    "Extent": {"Customers": True},
                    "Limitation": {"Count": 1000} | ({"Cursor": cursor} if cursor else {}),
                }
                response = await http.post(url + "/api/connector/v1/customers/getAll", json=body)
                bodies.append(response.content)
                page = response.json()
                cursor = page["Cursor"]
                if cursor is None or len(page["Customers"]) < 1000:
                    break
    return bodies


def lower_bound(requests: int, chain: int, *, limit: int = 200, window: float = 30.0) -> float:
    """The least time ``requests`` can take against Mews' limit with 300 ms + 0.2 ms/item:
    all but the last burst of ``limit`` wait for the sliding window, and a chain of ``chain``
    requests that depend on each other (cursor pages of one window, then the documents of the
    guests it loaded) takes ``chain`` full-page latencies, whatever the concurrency."""
    page = 0.3 + 0.0002 * 1000
    by_rate = math.floor((requests - 1) / limit) * window + 0.3
    return max(by_rate, chain * page)


def entities(args: argparse.Namespace) -> None:
    from shared.sync.engine import ENTITIES

    rows = []
    for size in args.entity_sizes:
        with simulator_process("--customers", str(size), *LATENCY) as url:
            chain = math.ceil(size / 24 / 1000)  # pages of a 31-day window (730 days of data)
            loads = {
                "customers only": (["customers"], "sequential", chain),
                "every entity, one after another (before)": (
                    list(ENTITIES),
                    "sequential",
                    chain + 1,
                ),
                "every entity, side by side (jobs, CLI)": (list(ENTITIES), "concurrent", chain + 1),
            }
            for key, (name, (chosen, mode, depth)) in zip(ENTITY_LOADS, loads.items(), strict=True):
                if key not in args.entity_loads:
                    continue
                reset_stats(url)
                with fresh_database(args.server_url) as db:
                    config: dict[str, Any] = {"url": url, "db": db, "entities": chosen}
                    config["mode"] = mode
                    config |= {"limit": 200, "window": 30.0, "concurrency": args.concurrency}
                    result = load_in_child(config)
                result |= _server(url)
                bound = lower_bound(result["server_requests"], depth)
                rows.append((size, name, result, bound))
                print(
                    f"  {size:>8,} {name:40} {result['seconds']:8.1f} s {result['server_requests']:6} requests",
                    flush=True,
                )
    print("\nfirst load of every entity vs customers only (300 ms + 0.2 ms/item, limit 200/30 s)")
    print(
        f"{'customers':>9} {'load':40} {'seconds':>8} {'requests':>9} {'bound s':>8} {'/ bound':>8} {'/ customers':>12} {'429s':>5} {'max/window':>10}"
    )
    alone: dict[int, float] = {}
    for size, name, result, bound in rows:
        if name == "customers only":
            alone[size] = result["seconds"]
        ratio = f"{result['seconds'] / alone[size]:12.2f}" if size in alone else f"{'':12}"
        print(
            f"{size:9,} {name:40} {result['seconds']:8.1f} {result['server_requests']:9} {bound:8.1f} "
            f"{result['seconds'] / bound:8.2f} {ratio} {result['server_429']:5} {result['max_in_window']:10}"
        )


def memory(args: argparse.Namespace) -> None:
    results = []
    for size in args.memory_sizes:
        with simulator_process(
            "--customers", str(size), "--no-rate-limit", startup_timeout=900
        ) as url:
            with fresh_database(args.server_url) as db:
                config = {"url": url, "db": db, "entities": ["customers"]}
                config["concurrency"] = args.concurrency
                result = load_in_child(config)
            results.append((size, result))
            print(f"  {size:>9,} customers: peak RSS {result['peak_rss_mb']:.0f} MB", flush=True)
    print("\npeak RSS of the loading process, first load of customers (limit lifted, no latency)")
    print(
        f"{'customers':>10} {'seconds':>8} {'guests/s':>9} {'peak RSS':>9}   RSS every 10 % of the run"
    )
    for size, result in results:
        samples = result["rss_samples_mb"] or [0.0]
        deciles = [samples[min(len(samples) - 1, len(samples) * k // 10)] for k in range(11)]
        print(
            f"{size:10,} {result['seconds']:8.1f} {result['rows']['customers'] / result['seconds']:9,.0f} "
            f"{result['peak_rss_mb']:8.0f}M   {' '.join(f'{d:.0f}' for d in deciles)}"
        )
    peaks = [r["peak_rss_mb"] for _, r in results]
    if len(peaks) > 1:
        print(f"largest / smallest peak: {max(peaks) / min(peaks):.2f}x (flat: within 1.10x)")


def ceiling(args: argparse.Namespace) -> None:
    size = args.ceiling_customers
    with simulator_process("--customers", str(size), *LATENCY, startup_timeout=600) as url:
        reset_stats(url)
        with fresh_database(args.server_url) as db:
            config = {"url": url, "db": db, "entities": ["customers"], "limit": 200}
            config |= {"window": 30.0, "concurrency": args.concurrency}
            result = load_in_child(config)
        result |= _server(url)
    rate = result["rows"]["customers"] / result["seconds"]
    print(f"\nfirst load of {size:,} customers, real limit 200/30 s, 300 ms + 0.2 ms/item")
    print(
        f"{rate:,.0f} rows/s = {rate / CEILING:.1%} of the ceiling ({CEILING:,.0f} rows/s); "
        f"{result['seconds']:.1f} s, {result['server_requests']} requests, 429s: client "
        f"{result['client_429']}, simulator {result['server_429']}; most requests in a 30 s window "
        f"{result['max_in_window']}; peak RSS {result['peak_rss_mb']:.0f} MB"
    )


def score(args: argparse.Namespace) -> None:
    size = args.score_customers
    with (
        simulator_process("--customers", str(size), "--no-rate-limit") as url,
        fresh_database(args.server_url) as db,
    ):
        config: dict[str, Any] = {"url": url, "db": db, "mode": "concurrent"}
        config |= {"entities": ["customers", "addresses", "identity_documents"]}
        loaded = load_in_child(config | {"concurrency": args.concurrency})
        seconds = asyncio.run(_score_twice(db))
    print(f"\nthe score command right after a first load of {size:,} customers (autovacuum off)")
    print(f"  first load (customers, addresses, documents)  {loaded['seconds']:7.2f} s")
    print(f"  first score                                    {seconds[0]:7.2f} s")
    print(f"  second score, nothing changed                  {seconds[1]:7.2f} s")


async def _score_twice(db: str) -> list[float]:
    """``guesthub score``'s job twice in a row, each timed whole."""
    from shared.connections.runner import run_database_job
    from shared.db.store import PsycopgTransport, Store
    from shared.quality.job import score_profiles

    store = Store(await PsycopgTransport.connect(db, max_size=4))
    seconds = []
    try:
        for _ in range(2):
            started = time.perf_counter()
            result = await run_database_job(store, "score_profiles", score_profiles)
            seconds.append(time.perf_counter() - started)
            if not result.ok:
                raise RuntimeError(f"score job {result.status}: {result.counts}")
    finally:
        await store.aclose()
    return seconds


def _server(url: str) -> dict[str, Any]:
    sim = stats(url)
    return {
        "server_requests": sim["requests"],
        "server_429": sim["rate_limited"],
        "max_in_window": sim["max_in_window"],
    }


@contextmanager
def _timed(name: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    print(f"[{name}: {time.perf_counter() - started:.0f} s]", flush=True)


def _sizes(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part]


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child_main(json.loads(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", action="append", choices=PARTS, help="repeatable")
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--entity-sizes", type=_sizes, default=[5_000, 20_000, 200_000])
    parser.add_argument(
        "--entity-loads",
        type=lambda text: text.split(","),
        default=list(ENTITY_LOADS),
        help=f"entities: which loads, of {','.join(ENTITY_LOADS)}",
    )
    parser.add_argument("--memory-sizes", type=_sizes, default=[100_000, 1_000_000])
    parser.add_argument("--ceiling-customers", type=int, default=300_000)
    parser.add_argument("--score-customers", type=int, default=20_000)
    parser.add_argument("--server-url", default=LOCAL_SERVER)
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"{os.cpu_count()} CPUs, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    parts: dict[str, Callable[[argparse.Namespace], None]] = {
        "throughput": throughput,
        "overhead": overhead,
        "entities": entities,
        "memory": memory,
        "ceiling": ceiling,
        "score": score,
    }
    for name in args.part or DEFAULT_PARTS:
        with _timed(name):
            parts[name](args)


if __name__ == "__main__":
    main()
