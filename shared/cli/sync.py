"""`guesthub sync`: first load with a progress bar, one poll, push, reconcile."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from shared.cli.common import command_settings, counts_table
from shared.cli.conflicts import conflicts_command
from shared.db.connect import open_store
from shared.db.store import Store
from shared.settings import Settings
from shared.sync.connect import (
    INTERACTIVE_CONNECT_SECONDS,
    INTERACTIVE_RETRY,
    connected_engine,
)
from shared.sync.engine import ENTITIES, Counts, SyncEngine
from shared.sync.liveness import engine_units, live_run, unit
from shared.sync.push import push_changes
from shared.sync.runs import Run

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
    unknown = set(chosen or []) - set(ENTITIES)
    if unknown:
        raise typer.BadParameter(f"unknown entity: {', '.join(sorted(unknown))}")
    return list(chosen or ENTITIES)


async def run_backfill(
    settings: Settings, entities: list[str], *, restart: bool = False, show_progress: bool = True
) -> dict[str, Any]:
    """The first load of each entity, with a progress bar (rows, rows/s, ETA by windows)."""
    progress = Progress(
        TextColumn("{task.fields[entity]:<18}"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rows]:>8,} rows {task.fields[rate]:>7,.0f}/s"),
        TimeRemainingColumn(),
        console=console,
        disable=not show_progress,
    )
    tasks: dict[str, Any] = {}
    started: dict[str, float] = {}
    rows: dict[str, int] = {}

    def on_progress(entity: str, fetched: int, windows: int) -> None:
        rows[entity] = rows.get(entity, 0) + fetched
        elapsed = max(time.monotonic() - started[entity], 1e-6)
        progress.update(
            tasks[entity], advance=windows, rows=rows[entity], rate=rows[entity] / elapsed
        )

    summary: dict[str, Any] = {}
    async with engine_for(settings, progress=on_progress) as (store, engine):
        scope = await engine.scope()
        with progress:
            for entity in entities:
                started[entity] = time.monotonic()
                total = (
                    engine.planned_windows(scope)
                    if entity not in ("resources", "identity_documents")
                    else 1
                )
                tasks[entity] = progress.add_task(
                    entity, total=total, entity=entity, rows=0, rate=0.0
                )
                async with (
                    live_run(store, "backfill") as run,
                    unit(store, run, f"backfill:{scope.scope_id(entity)}:{entity}") as mine,
                ):
                    counts = (
                        await engine.backfill(entity, run, restart=restart) if mine else Counts()
                    )
                    if not mine:
                        console.print(f"{entity}: another backfill is loading it; skipped")
                progress.update(tasks[entity], completed=total)
                summary[entity] = counts
        summary["rate_limited"] = engine.client.stats.rate_limited
        summary["requests"] = engine.client.stats.requests
    return summary


@app.command("backfill")
def backfill(
    entity: EntityOption = None,
    restart: Annotated[bool, typer.Option(help="Load again from scratch.")] = False,
) -> None:
    """First load from Mews: CreatedUtc windows, concurrent, resumable."""
    settings = command_settings()
    summary = asyncio.run(run_backfill(settings, _entities(entity), restart=restart))
    for name, counts in summary.items():
        if isinstance(counts, Counts):
            console.print(
                f"{name}: {counts.fetched} fetched, {counts.inserted} new, {counts.updated} updated, {counts.quarantined} quarantined"
            )
    console.print(f"Mews requests: {summary['requests']}, 429s: {summary['rate_limited']}")


def _job(job: str, work: Callable[[Store, SyncEngine, Run], Awaitable[None]]) -> None:
    settings = command_settings()

    async def main() -> Run:
        async with engine_for(settings) as (store, engine), live_run(store, job) as run:
            await work(store, engine, run)
        return run

    run = asyncio.run(main())
    console.print(counts_table(f"{job}: {run.status}", run.counts))
    if run.error:
        console.print(run.error)
    if run.status not in ("succeeded", "partial", "skipped"):
        raise typer.Exit(code=1)


@app.command("poll")
def poll(entity: EntityOption = None) -> None:
    """One incremental pass (UpdatedUtc windows from the checkpoint, with an overlap)."""
    entities = _entities(entity)

    async def work(store: Store, engine: SyncEngine, run: Run) -> None:
        await engine_units(engine, run, "poll", entities, engine.poll)

    _job("poll_changes", work)


@app.command("push")
def push() -> None:
    """Send pending staff edits to Mews (field-level three-way merge; conflicts logged)."""

    async def work(store: Store, engine: SyncEngine, run: Run) -> None:
        async with unit(store, run, "push_changes") as mine:
            if not mine:
                return
            waiting = len(await store.call("push_pending", p_limit=1000))
            bar = Progress(
                TextColumn("push"),
                BarColumn(bar_width=20),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=console,
            )
            with bar:
                task = bar.add_task("push", total=waiting)
                await push_changes(
                    store, engine, run, progress=lambda n: bar.update(task, advance=n)
                )

    _job("push_changes", work)


@app.command("reconcile")
def reconcile(entity: EntityOption = None) -> None:
    """Compare everything window by window and report what was corrected."""
    entities = _entities(entity)

    async def work(store: Store, engine: SyncEngine, run: Run) -> None:
        await engine_units(engine, run, "reconcile", entities, engine.reconcile)

    _job("reconcile", work)


app.command("conflicts")(conflicts_command)
