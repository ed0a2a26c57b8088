"""`guesthub events`: process the inbox, look at it, replay dead letters, purge old rows."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console

from shared.cli.common import command_settings, counts_table, with_store
from shared.db.store import Store

app = typer.Typer(no_args_is_help=True)
console = Console()


@app.command("replay")
def replay(
    ids: Annotated[list[int] | None, typer.Option("--id", help="Only these inbox ids.")] = None,
) -> None:
    """Re-queue dead-lettered events (all of them, or the given ids)."""
    result = with_store(command_settings(), lambda s: s.call("inbox_replay", p_ids=ids or None))
    console.print(f"{int(result['replayed'])} event(s) re-queued")


@app.command("stats")
def stats() -> None:
    """Events per status, unknown discriminators seen, and events no connection covers."""
    result: dict[str, Any] = with_store(command_settings(), lambda s: s.call("inbox_stats"))
    by_status = result.get("by_status") or {}
    if not by_status:
        console.print("The inbox is empty.")
    else:
        console.print(counts_table(f"Inbox: {sum(by_status.values()):,} event(s)", by_status))
    unknown = result.get("unknown_discriminators") or {}
    if unknown:
        console.print(counts_table("Unknown discriminators (stored, not processed)", unknown))
    unrouted = result.get("unrouted") or {}
    if unrouted.get("events"):
        enterprises = ", ".join(unrouted.get("enterprises") or []) or "-"
        console.print(
            f"[yellow]{unrouted['events']} event(s) for enterprises no active connection covers"
            f" (kept until one does): {enterprises}[/yellow]"
        )


@app.command("purge")
def purge(
    days: Annotated[
        int | None, typer.Option("--days", min=1, help="Retention (default INBOX_RETENTION_DAYS).")
    ] = None,
) -> None:
    """Delete processed and refused inbox rows older than the retention, and finished runs older
    than RUNS_RETENTION_DAYS (the daily purge_inbox)."""
    from shared.connections.runner import run_database_job
    from shared.sync.events import purge_inbox
    from shared.sync.runs import Run

    settings = command_settings()
    retention = days or settings.inbox_retention_days

    async def purge(store: Store, run: Run) -> int:
        return await purge_inbox(
            store,
            run,
            retention_days=retention,
            runs_retention_days=settings.runs_retention_days,
        )

    async def work(store: Store) -> dict[str, int]:
        return (await run_database_job(store, "purge_inbox", purge)).counts

    counts = with_store(settings, work)
    console.print(
        f"{counts.get('inbox_purged', 0)} inbox row(s) older than {retention} days purged,"
        f" {counts.get('runs_purged', 0)} finished run(s) older than"
        f" {settings.runs_retention_days} days"
    )


@app.command("process")
def process(
    connection: Annotated[
        str | None, typer.Option("--connection", help="Only this connection (its id or name).")
    ] = None,
) -> None:
    """Drain the inbox now, each connection its own events (what the process_events function
    does every minute)."""
    from shared.cli.sync import run_connections_command
    from shared.connections import jobs

    run_connections_command("process_events", jobs.process_events, connection)
