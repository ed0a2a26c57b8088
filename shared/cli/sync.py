"""`guesthub sync`: first load with a progress bar, one poll, push, reconcile."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from shared.cli.common import command_settings, counts_table
from shared.cli.conflicts import conflicts_command
from shared.cli.errors import CommandError, ExitCode, explain
from shared.connections import jobs, runner
from shared.connections.fleet import OK, ConnectionPass, ConnectionWork, FleetResult
from shared.connections.model import Connection
from shared.connections.registry import active_connections
from shared.db.connect import open_store
from shared.db.store import Store
from shared.settings import Settings
from shared.sync.connect import (
    INTERACTIVE_CONNECT_SECONDS,
    INTERACTIVE_RETRY,
    connected_engine,
)
from shared.sync.engine import Counts, SyncEngine
from shared.sync.entities import ENTITIES, UnknownEntityError, entity
from shared.sync.entities import entities as checked
from shared.sync.liveness import Held

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
    wait: bool = True,
) -> dict[str, Any]:
    """The first load of each entity of every active connection (or of ``connection``): the
    job runner with a command's options, a progress bar per entity and enterprise (rows,
    rows/s, ETA by windows; full only once the entity's first load is complete). A load held
    by another live backfill is waited for (or, without ``wait``, skipped); each is said as it
    happens. Raises the failure when no connection could be loaded; the summary names the
    connections that failed (``failures``)."""
    progress = Progress(
        TextColumn("{task.fields[label]:<30}"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rows]:>8,} rows {task.fields[rate]:>7,.0f}/s"),
        TimeRemainingColumn(),
        console=console,
        disable=not show_progress,
    )
    bars = _Bars(progress, entities)
    store = await open_store(settings)
    try:
        chosen = await _chosen_connections(store, settings, connection)
        options = runner.interactive(
            settings, only=chosen[0].id if connection else None, wait=wait, on_held=say_held
        )
        work = bars.around(jobs.backfill(entities, restart=restart))
        with progress:
            result = await runner.run_connections_job(store, settings, "backfill", work, options)
    finally:
        await store.aclose()
    _raise_when_all_failed(result)
    summary: dict[str, Any] = {"requests": bars.requests, "rate_limited": bars.rate_limited}
    counts: Counter[str] = Counter()
    for outcome in result.outcomes:
        counts.update(outcome.counts)
    for name in entities:
        summary[name] = Counts(*(counts[f"{name}_{k}"] for k in COUNTED))
    summary["skipped"] = counts["units_skipped"]
    summary["waited"] = counts["units_waited"]
    summary["waiting"] = {
        name: sweep.owner
        for name in entities
        if (sweep := entity(name).sweep) is not None and counts[f"{name}_waiting_for_{sweep.owner}"]
    }
    summary["failures"] = [o for o in result.outcomes if o.status not in OK]
    summary["partial"] = [o for o in result.outcomes if o.status == "partial"]
    return summary


COUNTED = ("fetched", "inserted", "updated", "unchanged", "quarantined")
NO_WAIT_HELP = (
    "Skip work another live run holds (exit 7) instead of waiting for it and reporting its outcome."
)
WaitOption = Annotated[bool, typer.Option("--wait/--no-wait", help=NO_WAIT_HELP)]


def held_line(held: Held) -> str:
    """One line about a unit of work another run held: who, since when, what this run did."""
    kind, _, rest = held.unit.partition(":")
    what = f"{kind} of {rest.rpartition(':')[2]}" if rest else kind
    run = f"{held.job or 'run'} run {held.holder or '?'}"
    if held.owner:
        run += f" on {held.owner}"
    since = f" since {held.since[:19].replace('T', ' ')} UTC" if held.since else ""
    detail = (held.detail or "").removeprefix("abandoned: ")
    lines = {
        "waiting": f"{what}: held by {run}{since}; waiting for it (--no-wait skips)",
        "skipped": f"{what}: held by {run}{since}; skipped (--no-wait)",
        "done": f"{what}: done by {run}, which this command waited for",
        "taken_over": f"{what}: {run}{since} is over ({detail}); this command does it",
        "reaped": f"{run} died ({detail}): marked abandoned, its work is free again",
    }
    return lines.get(held.event, f"{what}: {held.event} ({run})")


def say_held(held: Held) -> None:
    console.print(held_line(held), style="yellow" if held.event != "done" else None)


def skipped_exit(skipped: int, what: str) -> None:
    """Work held elsewhere was skipped (--no-wait): said, and exit 7, never 0."""
    if skipped:
        console.print(f"{skipped} {what} held by another live run; skipped (--no-wait)")
        raise typer.Exit(code=ExitCode.SKIPPED)


class _Bars:
    """A progress bar per entity of each enterprise a backfill loads, and the Mews requests
    its connections made."""

    def __init__(self, progress: Progress, entities: list[str]) -> None:
        self.progress = progress
        self.entities = entities
        self.requests = 0
        self.rate_limited = 0

    def around(self, work: ConnectionWork) -> ConnectionWork:
        """``work`` with the bars of the pass's enterprises, completed when it succeeds."""

        async def tracked(store: Store, p: ConnectionPass) -> None:
            bars = {engine: await self._follow(p.connection, engine) for engine in p.engines}
            try:
                await work(store, p)
            finally:
                for client in {id(e.client): e.client for e in p.engines}.values():
                    self.requests += client.stats.requests
                    self.rate_limited += client.stats.rate_limited
            for engine, tasks in bars.items():  # full only when the first load is complete
                for name, (task, total) in tasks.items():
                    if await engine.loaded(name):
                        self.progress.update(task, completed=total)

        return tracked

    async def _follow(
        self, connection: Connection, engine: SyncEngine
    ) -> dict[str, tuple[TaskID, int]]:
        scope = await engine.scope()
        tasks: dict[str, tuple[TaskID, int]] = {}
        for name in self.entities:
            total = engine.planned_windows(scope) if entity(name).windowed else 1
            label = name  # the environment's one property needs no name; the others do
            if connection.source != "environment" or connection.is_portfolio:
                label = f"{name} · {(connection.name or connection.id)[:16]}"
            task = self.progress.add_task(name, total=total, label=label, rows=0, rate=0.0)
            tasks[name] = (task, total)
        started: dict[str, float] = {}
        rows: Counter[str] = Counter()

        def on_progress(name: str, fetched: int, windows: int) -> None:
            if name not in tasks:
                return
            rows[name] += fetched
            elapsed = max(time.monotonic() - started.setdefault(name, time.monotonic()), 1e-6)
            rate = rows[name] / elapsed
            self.progress.update(tasks[name][0], advance=windows, rows=rows[name], rate=rate)

        engine.progress = on_progress
        return tasks


def _raise_when_all_failed(result: FleetResult) -> None:
    """Nothing went well: the first failure, one line and its exit code, as for any failure."""
    failures = [o.exception for o in result.outcomes if o.exception is not None]
    if failures and len(failures) == len(result.outcomes):
        raise failures[0]


def _exit_when_partial(partial: bool) -> None:
    """Work left for the next run (named above) is not "done": exit 6 (needs attention), and
    say how to finish it. A command that failed exits 1 instead."""
    if partial:
        console.print("work was left for the next run (above): run the command again to carry on")
        raise typer.Exit(code=int(ExitCode.ATTENTION))


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


ConnectionOption = Annotated[
    str | None,
    typer.Option("--connection", help="Only this connection (its id or name)."),
]


@app.command("backfill")
def backfill(
    entity: EntityOption = None,
    restart: Annotated[bool, typer.Option(help="Load again from scratch.")] = False,
    connection: ConnectionOption = None,
    wait: WaitOption = True,
) -> None:
    """First load from Mews of every active connection: CreatedUtc windows, concurrent,
    resumable. A load another live backfill holds is waited for, then carried on if it was
    not finished."""
    settings = command_settings()
    summary = asyncio.run(
        run_backfill(settings, _entities(entity), restart=restart, connection=connection, wait=wait)
    )
    for name, counts in summary.items():
        if isinstance(counts, Counts):
            console.print(
                f"{name}: {counts.fetched} fetched, {counts.inserted} new, {counts.updated} updated, {counts.quarantined} quarantined"
            )
    for name, owner in summary["waiting"].items():
        console.print(
            f"{name}: not loaded yet: it is read by the ids of {owner}, whose first load has not"
            f" finished; load {owner} first (`guesthub sync backfill --entity {owner}`)"
        )
    console.print(f"Mews requests: {summary['requests']}, 429s: {summary['rate_limited']}")
    for outcome in summary["partial"]:
        console.print(f"[yellow]{outcome.name or outcome.connection_id}: {outcome.error}[/yellow]")
    _exit_when_partial(bool(summary["partial"]) and not summary["failures"])  # a failure: 1
    for outcome in summary["failures"]:
        error = explain(outcome.exception).message if outcome.exception else outcome.error
        console.print(f"[red]{outcome.name or outcome.connection_id}: {error}[/red]")
    if summary["failures"]:
        raise typer.Exit(code=1)
    skipped_exit(summary["skipped"], "load(s)")


def run_connections_command(
    job: str, work: ConnectionWork, connection: str | None = None, *, wait: bool = True
) -> FleetResult:
    """A Mews job now, over every active connection (or one): the job runner the scheduled
    functions use, with a command's options (:func:`shared.connections.runner.interactive`).
    A table per connection; exit 1 unless all went well, 7 when work held elsewhere was
    skipped (``wait`` off)."""
    settings = command_settings()

    async def main() -> FleetResult:
        store = await open_store(settings)
        try:
            only = await _connection_id(store, settings, connection)
            options = runner.interactive(settings, only=only, wait=wait, on_held=say_held)
            return await runner.run_connections_job(store, settings, job, work, options)
        finally:
            await store.aclose()

    result = asyncio.run(main())
    _raise_when_all_failed(result)
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
    _exit_when_partial(result.status == "partial")  # the worst outcome: none failed
    if not result.ok:
        raise typer.Exit(code=1)
    skipped_exit(sum(o.counts.get("units_skipped", 0) for o in result.outcomes), "unit(s)")
    return result


async def _connection_id(store: Store, settings: Settings, only: str | None) -> str | None:
    if only is None:
        return None
    return (await _chosen_connections(store, settings, only))[0].id


@app.command("poll")
def poll(
    entity: EntityOption = None, connection: ConnectionOption = None, wait: WaitOption = True
) -> None:
    """One incremental pass (UpdatedUtc windows from the checkpoint, with an overlap)."""
    run_connections_command("poll_changes", jobs.poll(_entities(entity)), connection, wait=wait)


@app.command("push")
def push(connection: ConnectionOption = None, wait: WaitOption = True) -> None:
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
            "push_changes",
            jobs.push(progress=lambda n: bar.update(task, advance=n)),
            connection,
            wait=wait,
        )


@app.command("reconcile")
def reconcile(
    entity: EntityOption = None, connection: ConnectionOption = None, wait: WaitOption = True
) -> None:
    """Compare everything window by window and report what was corrected."""
    run_connections_command("reconcile", jobs.reconcile(_entities(entity)), connection, wait=wait)


app.command("conflicts")(conflicts_command)
