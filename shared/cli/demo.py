"""`guesthub demo`: the whole product end to end on this machine, with nothing but Python.

The embedded database (its default `guesthub` database, made afresh: the one every later
`guesthub` command uses), the Mews simulator with the real request limit, the first load with
its progress bar, a burst of changes in Mews delivered as webhooks (to the intake the `mews_webhook`
function runs, served locally) and WebSocket events (to the real listener), processing, a
staff edit pushed back to Mews, scoring, and the report. It ends with the commands that explore what it
left, and the one that stops the embedded server.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any

import psycopg
import typer
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from shared.cli.common import command_settings
from shared.cli.errors import CommandError
from shared.cli.quality import run_scoring, write_report
from shared.cli.sync import engine_for, run_backfill
from shared.db.connect import describe_database, ensure_database
from shared.db.embedded import DEFAULT_DATABASE, database_url, start_embedded
from shared.db.migrations import migrate, table_names_without_rls
from shared.db.store import PsycopgTransport, Store
from shared.intake.serve import serving_webhook
from shared.listener.listener import Listener
from shared.settings import Settings
from shared.simulator.running import Simulator, running_simulator
from shared.simulator.server import SimulatorConfig
from shared.sync.entities import SPECS
from shared.sync.events import process_events
from shared.sync.push import push_changes
from shared.sync.runs import recorded_run

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


async def _run(settings: Settings, simulator: Simulator, url: str) -> dict[str, Any]:  # noqa: PLR0915 - the demo's script, step by step
    summary: dict[str, Any] = {}
    console.print(
        "[bold]3.[/bold] first load (CreatedUtc windows, concurrent, inside the shared request budget)"
    )
    backfill = await run_backfill(settings, list(SPECS.values()))
    summary["backfill_requests"] = backfill["requests"]
    summary["backfill_429"] = backfill["rate_limited"]

    store = Store(await PsycopgTransport.connect(url, max_size=4))
    try:
        listener = Listener(
            store,
            websocket_url=settings.mews_websocket_url,
            client_token=settings.mews_client_token,
            access_token=settings.mews_access_token,
            catch_up=lambda: asyncio.sleep(0),
        )
        stop = asyncio.Event()
        listening = asyncio.create_task(listener.run(stop))
        await _wait(lambda: _true(listener.state.connected), 10)
        changed = await asyncio.to_thread(
            simulator.mutate,
            customers_added=20,
            customers_updated=30,
            reservations_updated=15,
            resources_updated=5,
        )
        expected_events = 2 * 20 + 30 + 15 + 5

        async def delivered() -> bool:
            stats = await store.call("inbox_stats")
            return (
                sum(stats["by_status"].values()) >= expected_events // 25 + 1
                and listener.state.frames >= 1
            )

        await _wait(delivered, 20)
        inbox = await store.call("inbox_stats")
        console.print(
            f"[bold]4.[/bold] Mews changed {sum(len(v) for v in changed.values())} records: "
            f"{simulator.app.stats.webhook_events_sent} webhook events in {simulator.app.stats.webhooks_sent} messages "
            f"and {listener.state.frames} WebSocket frame(s) stored in the inbox ({_statuses(inbox)})"
        )
        stop.set()
        await listening

        async with engine_for(settings) as (_, engine):
            async with recorded_run(store, "process_events") as run:
                await process_events(store, engine, run)
            summary["events"] = dict(run.counts)
            console.print(
                f"[bold]5.[/bold] process_events: {run.status}; {run.counts.get('events', 0)} events → "
                f"{run.entity_count('customers', 'ids')} customers, {run.entity_count('reservations', 'ids')} reservations, "
                f"{run.entity_count('resources', 'ids')} resources fetched by id"
            )

            guest_id, mews_before = await _staff_edit(url, simulator)
            async with recorded_run(store, "push_changes") as run:
                await push_changes(store, engine, run)
            after = simulator.data.customers[guest_id]["Phone"]
            console.print(
                f"[bold]6.[/bold] a receptionist added a missing phone in Supabase; push_changes: {run.status}, "
                f"{run.counts.get('pushed', 0)} profile pushed; in Mews the phone went {mews_before or '(empty)'} → {after}"
            )

            async def echoed() -> bool:
                stats = await store.call("inbox_stats")
                return int(stats["by_status"].get("pending", 0)) >= 1

            await _wait(echoed, 10)
            async with recorded_run(store, "process_events") as run:
                await process_events(store, engine, run)
            console.print(
                f"   Mews' webhook for our own write (the echo) came back and changed "
                f"{run.entity_count('customers', 'updated')} rows "
                f"({run.entity_count('customers', 'unchanged')} unchanged): no bounce"
            )
            summary["client_429"] = engine.client.stats.rate_limited
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
