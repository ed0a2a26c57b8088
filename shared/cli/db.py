"""`guesthub db ...`: migrate, status, privileges, stop the embedded default."""

from __future__ import annotations

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from shared.cli.common import command_settings
from shared.db.connect import describe_database, resolve_database_url
from shared.db.embedded import stop_embedded
from shared.db.migrations import migrate, status, table_names_without_rls

app = typer.Typer(no_args_is_help=True)
console = Console()


@app.command("migrate")
def migrate_command() -> None:
    """Apply pending migrations (DATABASE_URL, else the embedded default database)."""
    settings = command_settings()
    applied = migrate(resolve_database_url(settings))
    if not applied:
        console.print(f"Nothing to apply: {describe_database(settings)} is up to date.")
    for migration in applied:
        console.print(f"applied {migration.version} {migration.name}")


@app.command("status")
def status_command() -> None:
    """List applied and pending migrations and tables without row-level security."""
    settings = command_settings()
    url = resolve_database_url(settings)
    with psycopg.connect(url) as conn:
        report = status(conn)
        without_rls = table_names_without_rls(conn)
    table = Table("version", "name", "state")
    for migration in report.applied:
        table.add_row(migration.version, migration.name, "applied")
    for migration in report.pending:
        table.add_row(migration.version, migration.name, "[yellow]pending[/yellow]")
    console.print(table)
    console.print(f"{len(report.applied)} applied, {len(report.pending)} pending")
    if without_rls:
        console.print(f"[red]tables without RLS: {', '.join(without_rls)}[/red]")
        raise typer.Exit(code=1)


@app.command("privileges")
def privileges_command(
    dump: bool = typer.Option(False, "--dump", help="Print the database's privileges as YAML."),
) -> None:
    """Compare what each API role may do with supabase/privileges.yaml (exit 1 on a difference)."""
    from shared.db.privileges import compare, load_matrix, read_catalogue, render  # yaml

    settings = command_settings()
    url = resolve_database_url(settings)
    with psycopg.connect(url, autocommit=True) as conn:
        catalogue = read_catalogue(conn)
    if dump:
        typer.echo(render(catalogue), nl=False)
        return
    findings = compare(load_matrix(), catalogue)
    for finding in findings:
        console.print(f"[red]{finding}[/red]")
    if findings:
        console.print(f"{len(findings)} difference(s); `guesthub db privileges --dump` shows all")
        raise typer.Exit(code=1)
    console.print("Every privilege matches supabase/privileges.yaml.")


@app.command("stop")
def stop_command() -> None:
    """Stop the embedded default database if it runs."""
    settings = command_settings()
    stopped = stop_embedded(settings.data_dir)
    state = "stopped" if stopped else "was not running"
    console.print(f"the embedded database in {settings.data_dir} {state}")
