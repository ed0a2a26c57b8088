"""The `guesthub` command: one typer app, one module per command group."""

from __future__ import annotations

import typer

from shared.cli import db as db_commands

app = typer.Typer(
    help="Guest Data Hub: Mews ↔ Supabase guest data.",
    no_args_is_help=True,
    # tracebacks with locals would print connection strings and tokens
    pretty_exceptions_show_locals=False,
)
app.add_typer(db_commands.app, name="db", help="Database: migrate, status.")


def _register_optional() -> None:
    """Command groups written by other parts of the code register here when present."""
    from importlib import import_module

    for module_name, name, help_text in (
        ("shared.cli.simulator", "simulator", "Run the local Mews simulator."),
        ("shared.cli.sync", "sync", "Sync with Mews: backfill, poll, push, reconcile."),
        ("shared.cli.events", "events", "The event inbox: process, replay dead letters."),
        ("shared.cli.quality", None, None),
        ("shared.cli.scheduler", "scheduler", "Cloud Scheduler jobs from scheduler.yaml."),
        ("shared.cli.listener", None, None),
        ("shared.cli.demo", None, None),
    ):
        try:
            module = import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        if name is None:
            module.register(app)
        else:
            app.add_typer(module.app, name=name, help=help_text)


_register_optional()


def main() -> None:
    app()
