"""`guesthub sync`: first load with a progress bar, one poll, push, reconcile."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from shared.cli.common import command_settings, counts_table
from shared.cli.conflicts import conflicts_command
from shared.cli.errors import CommandError, ExitCode, explain
from shared.connections import jobs, runner
from shared.connections.fleet import ConnectionWork, FleetResult
from shared.connections.model import Connection
from shared.connections.registry import active_connections, discover
from shared.db.connect import open_store
from shared.db.store import Store
from shared.settings import Settings
from shared.sync.connect import (
    INTERACTIVE_CONNECT_SECONDS,
    INTERACTIVE_RETRY,
    connected_client,
    connected_engine,
)
from shared.sync.engine import Counts, SyncEngine
from shared.sync.entities import ENTITIES, UnknownEntityError, entity
from shared.sync.entities import entities as checked
from shared.sync.liveness import live_run, unit

app = typer.Typer(no_args_is_help=True)
console = Console(stderr=True)
EntityOption = Annotated[
    list[str] | None, typer.Option("--entity", help=f"One of {', '.join(ENTITIES)}; repeatable.")
]


@asynccontextmanager
async def engine_for(settings: Settings, **kwargs: Any) -> AsyncIterator[tuple[Store, SyncEngine]]:
    store = await open_store(settings)
    try:
        async with connected_engine(
            settings,
            store,
            retry=INTERACTIVE_RETRY,
            connect_timeout=INTERACTIVE_CONNECT_SECONDS,
            **kwargs,
        ) as engine:
            yield store, engine
    finally:
        await store.aclose()


def _entities(chosen: list[str] | None) -> list[str]:
    try:
        return list(checked(chosen or None))
    except UnknownEntityError as exc:
        raise typer.BadParameter(str(exc), param_hint="--entity") from None


async def run_backfill(
    settings: Settings,
    entities: list[str],
    *,
    restart: bool = False,
    show_progress: bool = True,
    connection: str | None = None,
) -> dict[str, Any]:
    """The first load of each entity of every active connection (or of ``connection``), with
    a progress bar per entity and enterprise (rows, rows/s, ETA by windows)."""
    progress = Progress(
        TextColumn("{task.fields[label]:<30}"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rows]:>8,} rows {task.fields[rate]:>7,.0f}/s"),
        TimeRemainingColumn(),
        console=console,
        disable=not show_progress,
    )
    summary: dict[str, Any] = {"requests": 0, "rate_limited": 0}
    store = await open_store(settings)
    try:
        connections = await _chosen_connections(store, settings, connection)
        with progress:
            for chosen in connections:
                async with connected_client(
                    settings,
                    store,
                    connection=chosen,
                    retry=INTERACTIVE_RETRY,
                    connect_timeout=INTERACTIVE_CONNECT_SECONDS,
                ) as client:
                    known = await discover(store, chosen, client)
                    for enterprise_id in known.enterprise_ids:
                        engine = SyncEngine(
                            store,
                            client,
                            enterprise_id=enterprise_id if known.is_portfolio else None,
                        )
                        await _backfill_enterprise(
                            store, engine, entities, restart, progress, summary, known
                        )
                    summary["rate_limited"] += client.stats.rate_limited
                    summary["requests"] += client.stats.requests
    finally:
        await store.aclose()
    return summary


async def _chosen_connections(
    store: Store, settings: Settings, only: str | None
) -> list[Connection]:
    connections = await active_connections(store, settings)
    if only is not None:
        connections = [c for c in connections if only in (c.id, c.name)]
        if not connections:
            raise CommandError(
                f"no active connection {only!r}: see `guesthub connections list`",
                ExitCode.USAGE,
            )
    if not connections:
        raise CommandError(
            "no active connection: set MEWS_ACCESS_TOKEN or run `guesthub connections add`",
            ExitCode.USAGE,
        )
    return connections


async def _backfill_enterprise(
    store: Store,
    engine: SyncEngine,
    entities: list[str],
    restart: bool,
    progress: Progress,
    summary: dict[str, Any],
    connection: Connection,
) -> None:
    scope = await engine.scope()
    started: dict[str, float] = {}
    rows: dict[str, int] = {}
    tasks: dict[str, Any] = {}

    def on_progress(entity: str, fetched: int, windows: int) -> None:
        rows[entity] = rows.get(entity, 0) + fetched
        elapsed = max(time.monotonic() - started[entity], 1e-6)
        progress.update(
            tasks[entity], advance=windows, rows=rows[entity], rate=rows[entity] / elapsed
        )

    engine.progress = on_progress
    for name in entities:
        started[name] = time.monotonic()
        total = engine.planned_windows(scope) if entity(name).windowed else 1
        label = name  # the environment's one property needs no name; the others do
        if connection.source != "environment" or connection.is_portfolio:
            label = f"{name} · {(connection.name or connection.id)[:16]}"
        tasks[name] = progress.add_task(name, total=total, label=label, rows=0, rate=0.0)
        async with (
            live_run(store, "backfill", connection_id=connection.id) as run,
            unit(store, run, f"backfill:{scope.scope_id(name)}:{name}") as mine,
        ):
            counts = await engine.backfill(name, run, restart=restart) if mine else Counts()
            if not mine:
                console.print(f"{name}: another backfill is loading it; skipped")
        progress.update(tasks[name], completed=total)
        summary[name] = summary.get(name, Counts()) + counts


ConnectionOption = Annotated[
    str | None,
    typer.Option("--connection", help="Only this connection (its id or name)."),
]


@app.command("backfill")
def backfill(
    entity: EntityOption = None,
    restart: Annotated[bool, typer.Option(help="Load again from scratch.")] = False,
    connection: ConnectionOption = None,
) -> None:
    """First load from Mews of every active connection: CreatedUtc windows, concurrent,
    resumable."""
    settings = command_settings()
    summary = asyncio.run(
        run_backfill(settings, _entities(entity), restart=restart, connection=connection)
    )
    for name, counts in summary.items():
        if isinstance(counts, Counts):
            console.print(
                f"{name}: {counts.fetched} fetched, {counts.inserted} new, {counts.updated} updated, {counts.quarantined} quarantined"
            )
    console.print(f"Mews requests: {summary['requests']}, 429s: {summary['rate_limited']}")


def run_connections_command(
    job: str, work: ConnectionWork, connection: str | None = None
) -> FleetResult:
    """A Mews job now, over every active connection (or one): the job runner the scheduled
    functions use, with a command's options (:func:`shared.connections.runner.interactive`).
    A table per connection; exit 1 unless all went well."""
    settings = command_settings()

    async def main() -> FleetResult:
        store = await open_store(settings)
        try:
            only = await _connection_id(store, settings, connection)
            options = runner.interactive(settings, only=only)
            return await runner.run_connections_job(store, settings, job, work, options)
        finally:
            await store.aclose()

    result = asyncio.run(main())
    failures = [o.exception for o in result.outcomes if o.exception is not None]
    if failures and len(failures) == len(result.outcomes):
        raise failures[0]  # nothing went well: one line and its exit code, as for any failure
    for outcome in result.outcomes:
        title = f"{job} · {outcome.name or outcome.connection_id}: {outcome.status}"
        console.print(counts_table(title, outcome.counts))
        if outcome.exception is not None:
            console.print(f"[red]{explain(outcome.exception).message}[/red]")
        elif outcome.error:
            console.print(outcome.error)
    if result.outcomes:
        console.print(f"{job}: {result.status} ({len(result.outcomes)} connection(s))")
    else:
        console.print(f"{job}: no connection was due (another run holds them, or none is active)")
    if not result.ok:
        raise typer.Exit(code=1)
    return result


async def _connection_id(store: Store, settings: Settings, only: str | None) -> str | None:
    if only is None:
        return None
    return (await _chosen_connections(store, settings, only))[0].id


@app.command("poll")
def poll(entity: EntityOption = None, connection: ConnectionOption = None) -> None:
    """One incremental pass (UpdatedUtc windows from the checkpoint, with an overlap)."""
    run_connections_command("poll_changes", jobs.poll(_entities(entity)), connection)


@app.command("push")
def push(connection: ConnectionOption = None) -> None:
    """Send pending staff edits to Mews (field-level three-way merge; conflicts logged)."""
    bar = Progress(
        TextColumn("push"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    )
    with bar:
        task = bar.add_task("push", total=None)
        run_connections_command(
            "push_changes", jobs.push(progress=lambda n: bar.update(task, advance=n)), connection
        )


@app.command("reconcile")
def reconcile(entity: EntityOption = None, connection: ConnectionOption = None) -> None:
    """Compare everything window by window and report what was corrected."""
    run_connections_command("reconcile", jobs.reconcile(_entities(entity)), connection)


app.command("conflicts")(conflicts_command)
