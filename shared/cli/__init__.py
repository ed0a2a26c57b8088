"""The `guesthub` command: one typer app, one module per command group."""

from __future__ import annotations

import typer

from shared.cli import db as db_commands
from shared.cli import demo as demo_commands
from shared.cli import events as events_commands
from shared.cli import listener as listener_commands
from shared.cli import quality as quality_commands
from shared.cli import scheduler as scheduler_commands
from shared.cli import simulator as simulator_commands
from shared.cli import sync as sync_commands

app = typer.Typer(
    help="Guest Data Hub: Mews ↔ Supabase guest data.",
    no_args_is_help=True,
    # tracebacks with locals would print connection strings and tokens
    pretty_exceptions_show_locals=False,
)
app.add_typer(db_commands.app, name="db", help="Database: migrate, status.")


app.add_typer(
    simulator_commands.app, name="simulator", help="Run the local Mews simulator; change its data."
)
app.add_typer(
    sync_commands.app, name="sync", help="Sync with Mews: backfill, poll, push, reconcile."
)
app.add_typer(
    events_commands.app, name="events", help="The event inbox: process, stats, replay dead letters."
)
app.add_typer(
    scheduler_commands.app, name="scheduler", help="Cloud Scheduler jobs from scheduler.yaml."
)
quality_commands.register(app)
listener_commands.register(app)
demo_commands.register(app)


def main() -> None:
    app()
