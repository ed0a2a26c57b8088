"""`guesthub demo`: the whole product end to end on this machine, with nothing but Python.

The embedded default database, migrated; then each stage prints what it did.
"""

from __future__ import annotations

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from shared.cli.common import command_settings
from shared.db.connect import resolve_database_url
from shared.db.migrations import migrate, table_names_without_rls

console = Console()


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo() -> None:
    """Run the end-to-end demo on the embedded database (or DATABASE_URL)."""
    settings = command_settings()
    console.rule("[bold]Guest Data Hub demo")
    url = resolve_database_url(settings)
    applied = migrate(url)
    console.print(f"database ready: {len(applied)} migrations applied now")
    print_summary(url)


def print_summary(url: str) -> None:
    with psycopg.connect(url) as conn:
        tables = [
            name
            for (name,) in conn.execute(
                "select tablename from pg_tables where schemaname = 'public' order by 1"
            )
        ]
        counts = {
            name: conn.execute(
                psycopg.sql.SQL("select count(*) from public.{}").format(
                    psycopg.sql.Identifier(name)
                )
            ).fetchone()
            for name in tables
        }
        without_rls = table_names_without_rls(conn)
    table = Table("table", "rows", title="What is in the database")
    for name, row in counts.items():
        table.add_row(name, str(row[0] if row else 0))
    console.print(table)
    console.print(
        "row-level security: "
        + (
            "[green]enabled on every table[/green]"
            if not without_rls
            else f"[red]missing on {without_rls}[/red]"
        )
    )
