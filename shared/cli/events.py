"""`guesthub events`: process the inbox, look at it, replay dead letters."""

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


@app.command("process")
def process() -> None:
    """Drain the inbox now (what the process_events function does every minute)."""
    from shared.cli.sync import _job
    from shared.sync.events import process_events

    _job("process_events", process_events)
