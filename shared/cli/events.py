"""`guesthub events`: process the inbox, look at it, replay dead letters, purge old rows."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from shared.cli.common import command_settings
from shared.db.connect import open_store

app = typer.Typer(no_args_is_help=True)


@app.command("replay")
def replay(
    ids: Annotated[list[int] | None, typer.Option("--id", help="Only these inbox ids.")] = None,
) -> None:
    """Re-queue dead-lettered events (all of them, or the given ids)."""
    settings = command_settings()

    async def run() -> int:
        store = await open_store(settings)
        try:
            result = await store.call("inbox_replay", p_ids=ids or None)
        finally:
            await store.aclose()
        return int(result["replayed"])

    typer.echo(f"{asyncio.run(run())} event(s) re-queued")


@app.command("stats")
def stats() -> None:
    """Events per status, and unknown discriminators seen."""
    settings = command_settings()

    async def run() -> object:
        store = await open_store(settings)
        try:
            return await store.call("inbox_stats")
        finally:
            await store.aclose()

    typer.echo(json.dumps(asyncio.run(run()), indent=2))


@app.command("purge")
def purge(
    days: Annotated[
        int | None, typer.Option("--days", min=1, help="Retention (default INBOX_RETENTION_DAYS).")
    ] = None,
) -> None:
    """Delete processed and refused inbox rows older than the retention (the daily purge_inbox)."""
    from shared.sync.events import purge_inbox
    from shared.sync.liveness import live_run

    settings = command_settings()
    retention = days or settings.inbox_retention_days

    async def run() -> int:
        store = await open_store(settings)
        try:
            async with live_run(store, "purge_inbox") as recorded:
                return await purge_inbox(store, recorded, retention_days=retention)
        finally:
            await store.aclose()

    typer.echo(f"{asyncio.run(run())} inbox row(s) older than {retention} days purged")


@app.command("process")
def process() -> None:
    """Drain the inbox now (what the process_events function does every minute)."""
    from shared.cli.sync import _job
    from shared.sync.events import process_events

    _job("process_events", process_events)
