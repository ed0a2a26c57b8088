"""The `guesthub` command: one typer app, one module per command group, imported when it runs.

`guesthub --help` lists :data:`COMMANDS` from their help text alone; `guesthub db migrate`
imports `shared.cli.db` and nothing else of the CLI (no simulator, no Google client, no
listener). Every command runs inside the error boundary of :mod:`shared.cli.errors`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from shared.cli.errors import boundary


@dataclass(frozen=True)
class Lazy:
    """A command of the root: the typer ``app`` of ``module`` as a group, or its ``command``."""

    module: str
    help: str
    command: str | None = None

    def load(self, name: str) -> Any:
        group = typer.main.get_group(importlib.import_module(self.module).app)
        if self.command is not None:
            return group.commands[self.command]
        group.name = name
        group.help = self.help
        return group


COMMANDS: dict[str, Lazy] = {
    "db": Lazy(
        "shared.cli.db",
        "Database: migrate, status, privileges (compare with supabase/privileges.yaml),"
        " stop (the embedded default).",
    ),
    "simulator": Lazy("shared.cli.simulator", "Run the local Mews simulator; change its data."),
    "sync": Lazy("shared.cli.sync", "Sync with Mews: backfill, poll, push, reconcile, conflicts."),
    "connections": Lazy(
        "shared.cli.connections",
        "Mews connections (one per AccessToken): list, add, disable, enable, health, keygen.",
    ),
    "events": Lazy(
        "shared.cli.events", "The event inbox: process, stats, replay dead letters, purge."
    ),
    "scheduler": Lazy("shared.cli.scheduler", "Cloud Scheduler jobs from scheduler.yaml."),
    "score": Lazy(
        "shared.cli.quality", "Enrich, find duplicates, rescore every guest, snapshot.", "score"
    ),
    "report": Lazy("shared.cli.quality", "Write the data-quality report (HTML).", "report"),
    "listen": Lazy(
        "shared.cli.listener",
        "Hold the Mews WebSocket; drain the inbox and push staff edits as they happen.",
        "listen",
    ),
    "rules": Lazy(
        "shared.cli.rules", "Rules as code: export, validate, dry-run, apply, enable, history."
    ),
    "status": Lazy(
        "shared.cli.status",
        "Sync health per enterprise; exit code 6 when something needs attention.",
        "status",
    ),
    "demo": Lazy("shared.cli.demo", "The whole product end to end on this machine.", "demo"),
}


class LazyGroup(TyperGroup):
    """The root group: lists :data:`COMMANDS` without importing them, imports one only to run
    it, and runs it inside the error boundary."""

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *COMMANDS]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        lazy = COMMANDS.get(cmd_name)
        if lazy is None:
            return super().get_command(ctx, cmd_name)
        if self._listing:  # help needs the name and the help text only
            return TyperCommand(name=cmd_name, help=lazy.help)
        return lazy.load(cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def invoke(self, ctx: Any) -> Any:
        with boundary(debug=bool(ctx.params.get("debug"))):
            return super().invoke(ctx)


app = typer.Typer(
    cls=LazyGroup,
    no_args_is_help=True,
    # tracebacks with locals would print connection strings and tokens
    pretty_exceptions_show_locals=False,
)


@app.callback()
def root(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of a failure.")
    ] = False,
) -> None:
    """Guest Data Hub: Mews ↔ Supabase guest data. Exit codes: 0 ok, 1 failed, 2 usage,
    3 configuration, 4 database unreachable or not migrated, 5 Mews unreachable or refused."""


def main() -> None:
    """The `guesthub` console script."""
    app()
