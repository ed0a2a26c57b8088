"""How fresh the data is: Mews change → row visible, staff edit → Mews, change → new score.

    python -m bench.freshness [--properties 1,20] [--rate 2] [--seconds 20]
                              [--phases worker,killed] [--cadence-scale 1]

For each number of properties (a fresh database and simulator each): the simulator in its own
process (300 ms latency, the real request limit: 200 per 30 s per token,
docs/MEWS.md#rate-limit) sends General Webhooks to our intake (``accept_webhook`` over HTTP, as
the ``mews_webhook`` function runs it) and WebSocket messages to ``guesthub listen`` (a process of
its own, as deployed). After a first load and a first scoring, each property changes ``--rate``
times a second (customers and reservations by turns; a reservation is announced by a webhook and
the WebSocket, a customer by a webhook) and a staff member edits a guest through row-level
security every ``--edit-every`` seconds. The bench watches the database every 0.1 s (figures are
rounded up to that):

- Mews change → row visible: the row's ``mews_updated_utc`` moved past what it was;
- change → new score: the guest's facts were computed from that row (``quality_facts_put``
  rescores it in the same call);
- staff edit → Mews: the edit is no longer pending (Mews accepted the update, or lost the merge);
- of which change → in the inbox: the first event about it stored (webhook or WebSocket), the
  part of the delay before anything of ours can act (the simulator's and the intake's).

Phases:

- ``worker``: ``guesthub listen --realtime`` (the sockets and the real-time worker), ``--seconds``
  of changes;
- ``killed``: the same process started, connected, then killed (SIGKILL): the safety net only,
  the schedules of scheduler.yaml run by the bench from the kill (their periods read from it:
  ``process_events`` and ``push_changes`` every 60 s, ``score_profiles`` every 15 min; ``poll_changes`` every 5 min is
  not needed: every change is announced by a webhook), each period times ``--cadence-scale``
  (1: scheduler.yaml's; another value is printed with the table). Changes for one
  ``process_events`` period, then until everything arrived (at most two ``push_changes``
  periods); ``change → new score`` is measured only when ``score_profiles``' period fits in that;
- ``before``: ``guesthub listen --no-realtime`` (sockets only) and the same schedules.

Requests and 429s are the simulator's counters for the phase.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import psycopg
from cryptography.fernet import Fernet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bench._db import LOCAL_SERVER, fresh_database
from bench._sim import reset_stats, simulator_process, stats
from shared.connections import jobs
from shared.connections.registry import register_manual
from shared.connections.runner import interactive, run_connections_job, scheduled
from shared.db.store import PsycopgTransport, Store
from shared.intake.store import accept_webhook
from shared.netserve import serve_in_thread
from shared.quality.job import score_profiles
from shared.settings import Settings, load_settings
from shared.sync.entities import entities
from shared.sync.runs import recorded_run

SECRET = "bench-freshness"
TICK = 0.1  # how often the database is watched


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def webhook_receiver(db: str) -> Iterator[str]:
    """Our intake over HTTP with one small pool (as a function instance keeps one store);
    yields the URL Mews is given."""
    held: list[Store] = []

    async def opened() -> Store:
        if not held:
            held.append(await small_store(db))
        return held[0]

    async def receive(request: Request) -> JSONResponse:
        result = await accept_webhook(
            opened, await request.body(), request.query_params.get("Token"), secret=SECRET
        )
        return JSONResponse(result.body, result.status)

    app = Starlette(routes=[Route("/webhook", receive, methods=["POST"])])
    with serve_in_thread(app) as server:
        yield f"{server.http_url}/webhook?Token={SECRET}"


async def small_store(db: str) -> Store:
    """A store of at most four connections: the database server is shared."""
    return Store(await PsycopgTransport.connect(db, max_size=4))


@contextmanager
def listener_process(
    settings: Settings, key: str, *, realtime: bool
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """``guesthub listen`` in its own process; yields its health port and the process. SIGTERM
    at the end (unless it was killed)."""
    port = free_port()
    assert settings.database_url is not None
    env = os.environ | {
        "DATABASE_URL": settings.database_url.get_secret_value(),
        "MEWS_PLATFORM_URL": settings.mews_platform_url,
        "MEWS_WEBSOCKET_URL": settings.mews_websocket_url,
        "TOKEN_ENCRYPTION_KEY": key,
        "MEWS_ACCESS_TOKEN": "",
        "LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-c", "from shared.cli import main; main()", "listen"]
    command += ["--port", str(port), "--realtime" if realtime else "--no-realtime"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)  # noqa: S603
    try:
        yield port, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def connected(port: int, properties: int, db: str, since: datetime) -> None:
    """Until every socket is up and each connection's catch-up since ``since`` ended."""
    deadline = time.monotonic() + 180
    async with httpx.AsyncClient() as client:
        while True:
            assert time.monotonic() < deadline, "the listener did not connect"
            try:
                body = (await client.get(f"http://127.0.0.1:{port}/healthz", timeout=5)).json()
            except httpx.TransportError:
                body = {}
            if body.get("status") == "ok" and len(body.get("connections", [])) == properties:
                with psycopg.connect(db) as conn:
                    row = conn.execute(
                        "select count(*) from public.sync_runs where job = 'listener_catch_up'"
                        " and started_at >= %s and status <> 'running'",
                        (since,),
                    ).fetchone()
                if row and row[0] >= properties:
                    return
            await asyncio.sleep(0.2)


@dataclass
class Path:
    """The delays measured on one path (seconds) and what never arrived."""

    name: str
    delays: list[float] = field(default_factory=list)
    pending: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def started(self, key: str, at: float) -> None:
        self.pending[key].append(at)

    def arrived(self, key: str, at: float) -> None:
        self.delays += [at - t for t in self.pending.pop(key, [])]

    @property
    def left(self) -> int:
        return sum(len(v) for v in self.pending.values())

    def row(self) -> str:
        if not self.delays:
            return f"{self.name:34} {0:>5} {'-':>7} {'-':>7} {'-':>7} {'-':>7} {self.left:>10}"
        d = sorted(self.delays)

        def pct(q: float) -> float:
            return d[min(len(d) - 1, int(q * len(d)))]

        return (
            f"{self.name:34} {len(d):>5} {statistics.median(d):>7.2f} {pct(0.95):>7.2f}"
            f" {pct(0.99):>7.2f} {d[-1]:>7.2f} {self.left:>10}"
        )


@dataclass
class Phase:
    customers: Path = field(default_factory=lambda: Path("Mews change → guest (webhook)"))
    reservations: Path = field(default_factory=lambda: Path("Mews change → reservation (both)"))
    stored: Path = field(default_factory=lambda: Path("  of which: change → in the inbox"))
    changed_at: list[tuple[str, float]] = field(default_factory=list)  # (id, wall clock)
    scores: Path = field(default_factory=lambda: Path("change → new score"))
    edits: Path = field(default_factory=lambda: Path("staff edit → Mews"))
    # per guest: the row's synced_at once visible, and when its change was made
    synced: dict[str, tuple[datetime, list[float]]] = field(default_factory=dict)
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # nothing waiting (watch)
    scored: bool = True  # whether the phase waits for new scores

    def paths(self) -> list[Path]:
        return [self.customers, self.reservations, self.stored, self.edits, self.scores]

    def waiting(self, *, scores: bool) -> bool:
        return any(p.left for p in self.paths() if scores or p is not self.scores)


async def baseline(conn: psycopg.AsyncConnection[Any], table: str) -> dict[str, datetime]:
    cursor = await conn.execute(f"select mews_id::text, mews_updated_utc from public.{table}")
    return {str(i): t for i, t in await cursor.fetchall()}


async def watch(db: str, phase: Phase, stop: asyncio.Event) -> None:
    """Resolve what became visible, every TICK, until ``stop``."""
    async with await psycopg.AsyncConnection.connect(db, autocommit=True) as conn:
        seen = {t: await baseline(conn, t) for t in ("guests", "reservations")}
        while not stop.is_set():
            now = time.monotonic()
            for table, path in (("guests", phase.customers), ("reservations", phase.reservations)):
                if not path.pending:
                    continue
                cursor = await conn.execute(
                    f"select mews_id::text, mews_updated_utc, synced_at from public.{table}"
                    " where mews_id = any(%s::uuid[])",
                    (list(path.pending),),
                )
                for mews_id, updated, synced in await cursor.fetchall():
                    if updated is not None and updated > seen[table].get(mews_id, updated):
                        if table == "guests":
                            phase.synced[mews_id] = (synced, list(path.pending[mews_id]))
                        path.arrived(mews_id, now)
                        seen[table][mews_id] = updated
            if phase.synced:
                cursor = await conn.execute(
                    "select guest_mews_id::text, source_synced_at from public.guest_facts"
                    " where guest_mews_id = any(%s::uuid[])",
                    (list(phase.synced),),
                )
                for mews_id, facts_of in await cursor.fetchall():
                    synced, _ = phase.synced[mews_id]
                    if facts_of is not None and facts_of >= synced:
                        del phase.synced[mews_id]
                        phase.scores.arrived(mews_id, now)
            if phase.edits.pending:
                cursor = await conn.execute(
                    "select mews_id::text from public.guests where mews_id = any(%s::uuid[])"
                    " and push_status is distinct from 'pending'",
                    (list(phase.edits.pending),),
                )
                for (mews_id,) in await cursor.fetchall():
                    phase.edits.arrived(mews_id, now)
            if not phase.waiting(scores=phase.scored):
                phase.settled.set()
            await asyncio.sleep(TICK)


@dataclass(frozen=True)
class Hotel:
    index: int
    chain_id: str
    staff: str  # a staff user of the chain
    guests: list[str]


async def generate(
    sim: str,
    db: str,
    hotels: list[Hotel],
    phase: Phase,
    *,
    args: argparse.Namespace,
    seconds: float,
) -> None:
    """Each property changes ``rate`` times a second, by turns a customer and a reservation,
    and a staff member edits a guest every ``edit_every`` seconds."""
    rng = random.Random(11)
    started = time.monotonic()
    turn = 0
    next_edit = started + args.edit_every / 2
    async with (
        httpx.AsyncClient(timeout=30) as client,
        await psycopg.AsyncConnection.connect(db, autocommit=True) as staff,
    ):

        async def change(kind: str) -> None:
            """One change in every property: one request (a request per property cost the
            bench more CPU than the simulator spent on the changes)."""
            at, wall = time.monotonic(), time.time()
            body = {"property": "all" if len(hotels) > 1 else hotels[0].index, kind: 1}
            answer = (await client.post(sim + "/_admin/mutate", json=body)).json()
            if kind == "customers_updated":
                for mews_id in answer["customers_updated"]:
                    phase.customers.started(mews_id, at)
                    phase.scores.started(mews_id, at)
                    phase.changed_at.append((mews_id, wall))
            else:
                for mews_id in answer["reservations"]:
                    phase.reservations.started(mews_id, at)
                    phase.changed_at.append((mews_id, wall))

        while time.monotonic() - started < seconds:
            kind = "customers_updated" if turn % 2 == 0 else "reservations_updated"
            await change(kind)
            turn += 1
            if time.monotonic() >= next_edit:
                next_edit += args.edit_every
                for hotel in hotels:
                    guest = rng.choice(hotel.guests)
                    await staff_edit(staff, hotel, guest)
                    phase.edits.started(guest, time.monotonic())
            await asyncio.sleep(max(0.0, started + turn / args.rate - time.monotonic()))


async def staff_edit(conn: psycopg.AsyncConnection[Any], hotel: Hotel, guest: str) -> None:
    """One committed edit through row-level security, as PostgREST runs it (a transaction
    of its own on a kept connection, as PostgREST's pool)."""
    async with conn.transaction():
        await conn.execute("set local role authenticated")
        await conn.execute(
            "select set_config('request.jwt.claims', %s, true)",
            (json.dumps({"role": "authenticated", "sub": hotel.staff}),),
        )
        await conn.execute(
            "update public.guests set notes = %s where chain_id = %s and mews_id = %s",
            (f"bench {uuid.uuid4().hex[:8]}", hotel.chain_id, guest),
        )


def scheduled_period(function: str) -> float:
    """The period (seconds) of ``function``'s job in scheduler.yaml (minute fields ``*`` and
    ``*/N`` with every hour: what the file uses)."""
    import yaml

    from shared.package_data import scheduler_file

    jobs_file = yaml.safe_load(scheduler_file().read_text(encoding="utf-8"))
    (job,) = [j for j in jobs_file["jobs"] if j["function"] == function]
    minute, *rest = str(job["schedule"]).split()
    if rest != ["*", "*", "*", "*"] or not (minute == "*" or minute.startswith("*/")):
        raise ValueError(f"{function}: schedule {job['schedule']!r} is not every N minutes")
    return 60.0 * (1 if minute == "*" else int(minute[2:]))


@dataclass(frozen=True)
class Cadence:
    """scheduler.yaml's periods (seconds), times ``scale``."""

    scale: float = 1.0

    @property
    def process_events(self) -> float:
        return scheduled_period("process_events") * self.scale

    @property
    def push_changes(self) -> float:
        return scheduled_period("push_changes") * self.scale

    @property
    def score_profiles(self) -> float:
        return scheduled_period("score_profiles") * self.scale

    @property
    def wait(self) -> float:
        """How long a phase without the worker waits for what is left: two push periods."""
        return 2 * self.push_changes + 10.0

    @property
    def scores(self) -> bool:
        """Whether score_profiles comes round within the wait."""
        return self.score_profiles <= self.wait


async def scheduler(store: Store, settings: Settings, started: float, cadence: Cadence) -> None:
    """scheduler.yaml's process_events, push_changes and score_profiles at their periods (times
    the cadence's scale) from ``started``, each job when its period comes round."""
    due = {
        "process_events": started + cadence.process_events,
        "push_changes": started + cadence.push_changes,
        "score_profiles": started + cadence.score_profiles,
    }
    while True:
        job = min(due, key=lambda j: due[j])
        await asyncio.sleep(max(0.0, due[job] - time.monotonic()))
        due[job] += getattr(cadence, job)
        if job == "process_events":
            await run_connections_job(
                store,
                settings,
                "process_events",
                jobs.process_events,
                scheduled(settings, exclusive=False),
            )
        elif job == "push_changes":
            await run_connections_job(
                store, settings, "push_changes", jobs.push(), scheduled(settings)
            )
        else:
            async with recorded_run(store, "score_profiles") as run:
                await score_profiles(store, run)


async def run_phase(
    name: str,
    *,
    settings: Settings,
    key: str,
    sim: str,
    hotels: list[Hotel],
    args: argparse.Namespace,
) -> tuple[Phase, dict[str, Any], float]:
    assert settings.database_url is not None
    db = settings.database_url.get_secret_value()
    worker = name == "worker"
    cadence = Cadence(args.cadence_scale)
    since = datetime.now().astimezone()
    with listener_process(settings, key, realtime=name != "before") as (port, process):
        await connected(port, len(hotels), db, since)
        if name == "killed":  # the worker dies: what its sockets and drains did is gone
            process.kill()
            process.wait()
        await asyncio.to_thread(reset_stats, sim)
        phase = Phase(scored=worker or cadence.scores)
        stop = asyncio.Event()
        watcher = asyncio.create_task(watch(db, phase, stop))
        store = await small_store(db)
        jobs_task = (
            None
            if worker
            else asyncio.create_task(scheduler(store, settings, time.monotonic(), cadence))
        )
        started = time.monotonic()
        try:
            # without the worker, a full period of process_events: a change waits for the next
            # tick, uniformly over the period (edits: the first half of push's)
            await generate(
                sim,
                db,
                hotels,
                phase,
                args=args,
                seconds=args.seconds if worker else cadence.process_events,
            )
            # until everything arrived: seconds with the worker, the schedules' periods without
            phase.settled.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(phase.settled.wait(), 30.0 if worker else cadence.wait)
        finally:
            stop.set()
            await watcher
            if jobs_task is not None:
                jobs_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await jobs_task
            await store.aclose()
        counters = await asyncio.to_thread(stats, sim)
        await asyncio.to_thread(delivery, db, phase)
    return phase, counters, time.monotonic() - started


def delivery(db: str, phase: Phase) -> None:
    """How long each change took to be stored in the inbox (its first event, by a webhook or
    the WebSocket): the part of the delay before anything of ours could process it."""
    with psycopg.connect(db) as conn:
        rows = conn.execute(
            "select e->'Value'->>'Id', extract(epoch from i.received_at)"
            " from public.event_inbox i, jsonb_array_elements(i.body->'Events') e"
            " where i.received_at >= to_timestamp(%s)",
            (min((w for _, w in phase.changed_at), default=time.time()) - 1,),
        ).fetchall()
    stored: dict[str, list[float]] = defaultdict(list)
    for record_id, at in rows:
        stored[str(record_id)].append(float(at))
    for record_id, wall in phase.changed_at:
        later = [at for at in stored.get(record_id, []) if at >= wall]
        if later:
            phase.stored.delays.append(min(later) - wall)


async def prepare(settings: Settings, sim: str) -> tuple[list[Hotel], str]:
    """Register each property's token, load customers and reservations, score once, add a staff
    member per chain."""
    assert settings.database_url is not None
    db = settings.database_url.get_secret_value()
    async with httpx.AsyncClient(timeout=10) as client:
        properties = (await client.get(sim + "/_admin/properties")).json()
    store = await small_store(db)
    try:
        for prop in properties:
            await register_manual(store, settings, prop["access_token"], prop["name"])
        load = await run_connections_job(
            store,
            settings,
            "poll_changes",
            jobs.poll(entities(["customers", "reservations"])),
            interactive(settings),
        )
        assert load.ok, load.summary()
        async with recorded_run(store, "score_profiles") as run:
            await score_profiles(store, run)
    finally:
        await store.aclose()
    hotels = []
    with psycopg.connect(db, autocommit=True) as conn:
        for prop in properties:
            user = str(uuid.uuid4())
            email = f"{user[:8]}@bench.example"
            conn.execute("insert into auth.users (id, email) values (%s, %s)", (user, email))
            conn.execute("insert into public.app_users (id, email) values (%s, %s)", (user, email))
            conn.execute(
                "insert into public.memberships (user_id, chain_id, role) values (%s, %s, 'staff')",
                (user, prop["chain_id"]),
            )
            guests = [
                str(g)
                for (g,) in conn.execute(
                    "select mews_id from public.guests where chain_id = %s and is_active",
                    (prop["chain_id"],),
                )
            ]
            hotels.append(Hotel(prop["index"], prop["chain_id"], user, guests))
    return hotels, db


TITLES = {
    "worker": "worker: guesthub listen --realtime",
    "killed": "killed: guesthub listen killed (SIGKILL) after connecting; the schedules alone",
    "before": "before: guesthub listen --no-realtime (sockets only) + the schedules",
}


def report(
    name: str, phase: Phase, counters: dict[str, Any], seconds: float, args: argparse.Namespace
) -> None:
    cadence = Cadence(args.cadence_scale)
    print(f"\n{TITLES[name]}: {seconds:.0f} s")
    if name != "worker":
        scaled = "" if cadence.scale == 1 else f" SCALED x{cadence.scale:g} from scheduler.yaml's"
        print(
            f"  schedules{scaled}: process_events every {cadence.process_events:g} s, push_changes"
            f" every {cadence.push_changes:g} s, score_profiles every {cadence.score_profiles:g} s"
            f" ({'measured' if cadence.scores else 'beyond the phase: not measured'}); changes"
            f" over one process_events period"
        )
    print(
        f"{'path':34} {'n':>5} {'p50 s':>7} {'p95 s':>7} {'p99 s':>7} {'max s':>7} {'not yet':>10}"
    )
    for path in phase.paths():
        if phase.scored or path is not phase.scores:
            print(path.row())
    per_token = counters.get("per_token", {}).values()
    print(
        f"requests {counters['requests']}, 429s {counters['rate_limited']}, most in one window"
        f" per token {max((t['max_in_window'] for t in per_token), default=0)} (limit 200),"
        f" webhooks {counters['webhooks_sent']}, WebSocket messages {counters['websocket_messages_sent']}"
    )


async def run(args: argparse.Namespace, db: str, sim: str, key: str) -> None:
    settings = load_settings(
        database_url=db,
        mews_platform_url=sim,
        mews_websocket_url=sim.replace("http://", "ws://"),
        token_encryption_key=key,
        mews_access_token="",
        log_level="WARNING",
    )
    hotels, _ = await prepare(settings, sim)
    print(
        f"{len(hotels)} propert{'y' if len(hotels) == 1 else 'ies'}, {sum(len(h.guests) for h in hotels)}"
        f" guests; {args.rate} changes/s per property for {args.seconds} s, a staff edit every"
        f" {args.edit_every} s per property; simulator latency {args.latency_ms} ms"
    )
    for name in args.phases.split(","):
        phase, counters, seconds = await run_phase(
            name, settings=settings, key=key, sim=sim, hotels=hotels, args=args
        )
        report(name, phase, counters, seconds, args)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--properties", default="1,20", help="numbers of properties, each a run of its own"
    )
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--rate", type=float, default=2.0, help="changes per second per property")
    parser.add_argument("--seconds", type=float, default=20.0, help="changes with the worker")
    parser.add_argument("--edit-every", type=float, default=5.0)
    parser.add_argument("--latency-ms", type=float, default=300.0)
    parser.add_argument("--phases", default="worker,killed", help="worker, killed, before")
    parser.add_argument(
        "--cadence-scale",
        type=float,
        default=1.0,
        help="the schedules' periods times this (1: scheduler.yaml's)",
    )
    parser.add_argument("--server-url", default=LOCAL_SERVER)
    args = parser.parse_args()
    unknown = set(args.phases.split(",")) - set(TITLES)
    if unknown:
        parser.error(f"unknown phases {sorted(unknown)}: {', '.join(TITLES)}")
    for properties in (int(p) for p in args.properties.split(",")):
        key = Fernet.generate_key().decode()
        print(f"\n=== {properties} propert{'y' if properties == 1 else 'ies'}", flush=True)
        with (
            fresh_database(args.server_url) as db,
            webhook_receiver(db) as hook,
            simulator_process(
                "--customers",
                str(args.customers),
                "--properties",
                str(properties),
                "--latency-ms",
                str(args.latency_ms),
                "--webhook-url",
                hook,
            ) as sim,
        ):
            asyncio.run(run(args, db, sim, key))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
