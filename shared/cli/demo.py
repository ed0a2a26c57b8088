"""`guesthub demo`: the whole product end to end on this machine, with nothing but Python.

The embedded database (its default `guesthub` database, made afresh: the one every later
`guesthub` command uses), the Mews simulator with the real request limit, the first load with
its progress bar, then the always-on service (`guesthub listen --realtime`: the WebSocket and the
real-time worker) taking every change with no job run by hand: a burst of changes in Mews
delivered as webhooks (to the intake the `mews_webhook` function runs, served locally) and
WebSocket events, in the mirror within a second or so (timed), one guest's change timed to its
row and its new score, a staff edit timed to Mews; then scoring, and the report. It ends with the commands that explore what it
left, and the one that stops the embedded server.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

import psycopg
import typer
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from shared.cli.common import command_settings
from shared.cli.errors import CommandError
from shared.cli.quality import run_scoring, write_report
from shared.cli.sync import run_backfill
from shared.db.connect import describe_database, ensure_database
from shared.db.embedded import DEFAULT_DATABASE, database_url, start_embedded
from shared.db.migrations import migrate, table_names_without_rls
from shared.db.store import PsycopgTransport, Store
from shared.intake.serve import serving_webhook
from shared.listener.service import supervisor_for, worker_for
from shared.settings import Settings
from shared.simulator.running import Simulator, running_simulator
from shared.simulator.server import SimulatorConfig
from shared.sync.entities import SPECS

console = Console()
# the comment that marks the embedded default database as the demo's (recreated at will)
DEMO_MARK = "made by guesthub demo"
# the mirror tables (one per entity in the registry), then the machinery's
TABLES = (
    *(spec.table for spec in SPECS.values()),
    "event_inbox",
    "quarantine",
    "conflict_log",
    "guest_scores",
    "guest_duplicates",
    "sync_runs",
)


app = typer.Typer()


@app.command("demo")
def demo(
    customers: int = typer.Option(5000, help="Guests in the simulated hotel."),
    latency_ms: float = typer.Option(50.0, help="Simulated Mews latency per response."),
) -> None:
    """Run the end-to-end demo on the embedded database (or a DATABASE_URL you give)."""
    settings = command_settings()
    console.rule("[bold]Guest Data Hub demo")
    url = _demo_database(settings)
    applied = migrate(url)
    with psycopg.connect(url) as conn:
        missing_rls = table_names_without_rls(conn)
    console.print(
        f"[bold]1.[/bold] database ready: {len(applied)} migrations applied; row-level security "
        + (
            "[green]on every table[/green]"
            if not missing_rls
            else f"[red]missing on {missing_rls}[/red]"
        )
    )
    secret = secrets.token_urlsafe(16)
    config = SimulatorConfig(
        customers=customers,
        enterprises=1,
        latency_ms=latency_ms,
        per_item_ms=0.05,
        webhook_batch_size=25,
    )
    hook_settings = settings.model_copy(
        update={"database_url": SecretStr(url), "webhook_secret": SecretStr(secret)}
    )
    with running_simulator(config) as simulator, serving_webhook(hook_settings) as hook_url:
        simulator.set_webhook(f"{hook_url}?Token={secret}", webhook_batch_size=25)
        console.print(
            f"[bold]2.[/bold] Mews simulator on {simulator.url}: {customers:,} guests, "
            f"limit 200 requests / 30 s, {latency_ms:.0f} ms latency; webhooks to the local webhook intake"
        )
        demo_settings = settings.model_copy(
            update={
                "database_url": SecretStr(url),
                "mews_platform_url": simulator.url,
                "mews_websocket_url": simulator.ws_url,
            }
        )
        summary = asyncio.run(_run(demo_settings, simulator, url))
    _print_summary(url, summary)
    _print_next_steps(settings)


def _demo_database(settings: Settings) -> str:
    if settings.database_url is not None:
        console.print("using DATABASE_URL (not dropped or recreated)")
        return settings.database_url.get_secret_value()
    server = start_embedded(settings.data_dir)
    _refuse_foreign_data(server, settings)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("drop database if exists {} with (force)").format(
                psycopg.sql.Identifier(DEFAULT_DATABASE)
            )
        )
    ensure_database(server, DEFAULT_DATABASE)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("comment on database {} is {}").format(
                psycopg.sql.Identifier(DEFAULT_DATABASE), psycopg.sql.Literal(DEMO_MARK)
            )
        )
    console.print(f"{describe_database(settings)}: made afresh for the demo")
    return database_url(server, DEFAULT_DATABASE)


def _refuse_foreign_data(server: str, settings: Settings) -> None:
    """The demo recreates the embedded default database: not when it holds runs that the demo
    did not make (someone synced real data into it)."""
    with psycopg.connect(server) as conn:
        row = conn.execute(
            "select shobj_description(oid, 'pg_database') from pg_database where datname = %s",
            (DEFAULT_DATABASE,),
        ).fetchone()
    if row is None or row[0] == DEMO_MARK or not _has_runs(database_url(server, DEFAULT_DATABASE)):
        return
    raise CommandError(
        f"{describe_database(settings)} holds data the demo did not make, and the demo recreates"
        " it: set GUESTHUB_HOME to another folder (or DATABASE_URL to an empty database)"
    )


def _has_runs(url: str) -> bool:
    with psycopg.connect(url) as conn:
        table = conn.execute("select to_regclass('public.sync_runs')").fetchone()
        if table is None or table[0] is None:
            return False
        return conn.execute("select exists (select from public.sync_runs)").fetchone() == (True,)


async def _wait(predicate: Any, limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(0.2)
    return False


async def _run(settings: Settings, simulator: Simulator, url: str) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    console.print(
        "[bold]3.[/bold] first load (CreatedUtc windows, concurrent, inside the shared request budget)"
    )
    backfill = await run_backfill(settings, list(SPECS.values()))
    summary["backfill_requests"] = backfill["requests"]
    summary["backfill_429"] = backfill["rate_limited"]

    store = Store(await PsycopgTransport.connect(url, max_size=8))
    try:
        await _realtime(settings, simulator, store, url, summary)
    finally:
        await store.aclose()

    scoring = await run_scoring(settings)
    if scoring is not None and scoring.status != "succeeded":
        raise CommandError(f"scoring {scoring.status}: {scoring.error}")
    counts = scoring.counts if scoring is not None else {}
    store = Store(await PsycopgTransport.connect(url, max_size=2))
    try:
        report = settings.data_dir / "report.html"
        paths = await write_report(store, report)
    finally:
        await store.aclose()
    console.print(
        f"[bold]7.[/bold] scored {counts.get('scored', 0):,} profiles "
        f"({counts.get('duplicate_pairs', 0)} possible duplicate pairs)"
    )
    summary["report"] = [str(p.resolve()) for p in paths]
    summary["simulator"] = simulator.stats()
    return summary


async def _realtime(
    settings: Settings, simulator: Simulator, store: Store, url: str, summary: dict[str, Any]
) -> None:
    """Steps 4 to 6: the always-on service (``guesthub listen --realtime``: the WebSocket and
    the real-time worker) takes every change from here, with no job run by hand."""
    supervisor = supervisor_for(settings, store)
    worker = worker_for(settings, store)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(supervisor.run(stop)), asyncio.create_task(worker.run(stop))]
    try:

        def ready() -> bool:
            sockets = supervisor.sockets.values()
            return (
                worker.state.listening
                and any(d.chains for d in worker.drainers.values())
                and any(s.listener.state.connected for s in sockets)
            )

        await _until(ready, "the WebSocket connected and the worker listening")
        console.print(
            "[bold]4.[/bold] the always-on service runs (guesthub listen --realtime): the WebSocket,"
            " and the real-time worker LISTENing for what the inbox and staff edits notify"
        )

        # a burst of changes in Mews, over webhooks and the WebSocket
        started = time.monotonic()
        changed = await asyncio.to_thread(
            simulator.mutate,
            customers_added=20,
            customers_updated=30,
            reservations_updated=15,
            resources_updated=5,
        )
        ids = [*changed["customers_added"], *changed["customers_updated"]]
        mirrored = await _until(
            lambda: _all_current(url, simulator, ids, changed["reservations"]),
            "the changed guests and reservations in the mirror, the inbox drained",
        )
        console.print(
            f"[bold]5.[/bold] Mews changed {sum(len(v) for v in changed.values())} records"
            f" ({simulator.app.stats.webhook_events_sent} webhook events,"
            f" {sum(s.listener.state.frames for s in supervisor.sockets.values())} WebSocket"
            f" frame(s)): all in the mirror {mirrored - started:.1f} s later, no job run by hand"
        )

        # one change, timed: Mews → the guests row → its new score
        before = _guest_updated(url, [])
        started = time.monotonic()
        (guest,) = (await asyncio.to_thread(simulator.mutate, customers_updated=1))[
            "customers_updated"
        ]
        arrived = await _until(
            lambda: _guest_updated(url, [guest]).get(guest) != before.get(guest),
            "the guest's change in the mirror",
        )
        scored = await _until(lambda: _facts_current(url, guest), "the guest's new score")
        summary["change_seconds"] = arrived - started
        console.print(
            f"   one guest changed in Mews: in guests {arrived - started:.2f} s later,"
            f" rescored {scored - started:.2f} s later"
        )

        # a receptionist's edit reaches Mews
        guest_id, mews_before = await _staff_edit(url, simulator)
        echoes = _events_about(url, guest_id)[0]
        started = time.monotonic()
        pushed = await _until(
            lambda: simulator.data.customers[guest_id]["Phone"] not in (None, mews_before),
            "the staff edit in Mews",
        )
        after = simulator.data.customers[guest_id]["Phone"]
        summary["edit_seconds"] = pushed - started
        console.print(
            f"[bold]6.[/bold] a receptionist added a missing phone in Supabase: in Mews"
            f" {pushed - started:.2f} s later ({mews_before or '(empty)'} → {after}),"
            " no job run by hand"
        )
        await _until(
            lambda: _echo_processed(url, guest_id, echoes),
            "Mews' webhook for our own write, processed",
        )
        status = _push_status(url, guest_id)
        console.print(
            "   Mews' webhook for our own write (the echo) came back and was processed: the"
            f" guest's push status is {status!r}, nothing pushed again"
        )
        summary["client_429"] = simulator.app.stats.statuses.get(429, 0)
        summary["realtime"] = worker.state.snapshot()
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)


async def _until(condition: Callable[[], bool], what: str, limit: float = 60.0) -> float:
    """When ``condition`` became true (looked at every 50 ms); a CommandError after ``limit``
    seconds (never reported as done)."""
    deadline = time.monotonic() + limit
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            raise CommandError(f"the demo waited {limit:.0f} s for {what}: not there")
        await asyncio.sleep(0.05)
    return time.monotonic()


def _guest_updated(url: str, ids: list[str]) -> dict[str, Any]:
    """Each guest's ``mews_updated_utc`` (every guest without ``ids``)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select mews_id::text, mews_updated_utc from public.guests"
            " where cardinality(%s::uuid[]) = 0 or mews_id = any(%s::uuid[])",
            (ids, ids),
        ).fetchall()
    return dict(rows)


def _all_current(
    url: str, simulator: Simulator, guests: list[str], reservations: list[str]
) -> bool:
    """The guests and reservations as Mews has them now, and nothing left in the inbox."""
    data = simulator.data
    with psycopg.connect(url) as conn:
        phones: dict[str, str | None] = dict(
            conn.execute(
                "select mews_id::text, phone from public.guests where mews_id = any(%s::uuid[])",
                (guests,),
            ).fetchall()
        )
        states: dict[str, str] = dict(
            conn.execute(
                "select mews_id::text, state from public.reservations"
                " where mews_id = any(%s::uuid[])",
                (reservations,),
            ).fetchall()
        )
    return (
        all(g in phones and phones[g] == data.customers[g]["Phone"] for g in guests)
        and all(states.get(r) == data.reservations[r]["State"] for r in reservations)
        and _inbox_drained(url)
    )


def _inbox_drained(url: str) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "select count(*) from public.event_inbox where status <> 'done'"
        ).fetchone()
    return row is not None and row[0] == 0


def _facts_current(url: str, guest: str) -> bool:
    """The guest's facts (and score) computed from its current row."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "select f.source_synced_at >= g.synced_at from public.guests g"
            " join public.guest_facts f on f.chain_id = g.chain_id and f.guest_mews_id = g.mews_id"
            " where g.mews_id = %s",
            (guest,),
        ).fetchone()
    return bool(row and row[0])


def _events_about(url: str, record_id: str) -> tuple[int, int]:
    """How many inbox rows name ``record_id``, and how many of them are done."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "select count(distinct i.id), count(distinct i.id) filter (where i.status = 'done')"
            " from public.event_inbox i, jsonb_array_elements(i.body->'Events') e"
            " where e->'Value'->>'Id' = %s",
            (record_id,),
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def _echo_processed(url: str, guest: str, before: int) -> bool:
    """A webhook about ``guest`` stored since (``before`` rows named it), and all of them done."""
    stored, done = _events_about(url, guest)
    return stored > before and done == stored


def _push_status(url: str, guest: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "select push_status from public.guests where mews_id = %s", (guest,)
        ).fetchone()
    return str(row[0]) if row else "missing"


def _statuses(stats: dict[str, Any]) -> str:
    """``{"pending": 5, "done": 2}`` as "2 done, 5 pending"."""
    return ", ".join(f"{n} {status}" for status, n in sorted(stats["by_status"].items()))


async def _true(value: bool) -> bool:
    return value


async def _staff_edit(url: str, simulator: Simulator) -> tuple[str, Any]:
    """A receptionist's edit, made exactly as the frontend makes it: through RLS, as a staff user."""
    enterprise = simulator.data.enterprises[0]["Id"]
    guest_id = next(
        c["Id"] for c in simulator.data.customers.values() if c["IsActive"] and not c["Phone"]
    )
    before = simulator.data.customers[guest_id]["Phone"]

    def edit() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            user = conn.execute(
                "insert into auth.users (id, email) values (gen_random_uuid(), 'reception@hotel.example')"
                " returning id"
            ).fetchone()[0]  # type: ignore[index]
            conn.execute(
                "insert into public.app_users (id, email) values (%s, 'reception@hotel.example')",
                (user,),
            )
            conn.execute(
                "insert into public.memberships (user_id, enterprise_id, role) values (%s, %s, 'staff')",
                (user, enterprise),
            )
            with conn.transaction():
                conn.execute("set local role authenticated")
                conn.execute(
                    "select set_config('request.jwt.claims', %s, true)",
                    (json.dumps({"role": "authenticated", "sub": str(user)}),),
                )
                conn.execute(
                    "update public.guests set phone = '+44 20 7946 0321' where mews_id = %s",
                    (guest_id,),
                )

    await asyncio.to_thread(edit)
    return guest_id, before


def _print_summary(url: str, summary: dict[str, Any]) -> None:
    table = Table("table", "rows", title="The mirror in Supabase (Postgres)")
    with psycopg.connect(url) as conn:
        for name in TABLES:
            row = conn.execute(
                psycopg.sql.SQL("select count(*) from public.{}").format(
                    psycopg.sql.Identifier(name)
                )
            ).fetchone()
            table.add_row(name, f"{row[0] if row else 0:,}")
        conflicts = conn.execute("select count(*) from public.conflict_log").fetchone()
        runs = conn.execute(
            "select job, status, count(*) from public.sync_runs group by 1, 2 order by 1"
        ).fetchall()
    console.print(table)
    simulator = summary["simulator"]
    console.print(f"sync runs: {', '.join(f'{j} {s}×{n}' for j, s, n in runs)}")
    console.print(
        f"Mews requests: {simulator['requests']:,} (max {simulator['max_in_window']} in any 30 s; limit 200), "
        f"429s: {simulator['rate_limited']}; conflicts logged: {conflicts[0] if conflicts else 0}"
    )
    for path in summary["report"]:
        console.print(f"[bold]report:[/bold] {path}")


def _print_next_steps(settings: Settings) -> None:
    """How to look at what the demo left, and how to stop the embedded server."""
    embedded = settings.database_url is None
    where = describe_database(settings) if embedded else "DATABASE_URL"
    console.print(f"\n[bold]Explore it[/bold]: every guesthub command now uses {where}")
    for command in (
        "guesthub events stats",
        "guesthub score",
        "guesthub report --html report.html",
        "guesthub db status",
    ):
        console.print(f"  {command}", highlight=False)
    if embedded:
        console.print("[bold]Stop the embedded server[/bold] when you are done: guesthub db stop")
