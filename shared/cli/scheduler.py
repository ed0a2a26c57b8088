"""`guesthub scheduler apply`: scheduler.yaml → Cloud Scheduler jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from google.cloud import scheduler_v1

from shared.scheduler.apply import apply_jobs
from shared.scheduler.config import load, parent, to_jobs

app = typer.Typer(no_args_is_help=True)


@app.command("apply")
def apply(
    project: Annotated[str, typer.Option(help="Google Cloud project id.")],
    region: Annotated[str, typer.Option(help="Region of the functions and jobs.")],
    file: Annotated[Path, typer.Option(help="The jobs file.")] = Path("scheduler.yaml"),
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only show what would change.")
    ] = False,
) -> None:
    """Create missing jobs and update changed ones (uses Application Default Credentials)."""
    config = load(file, project=project, region=region)
    jobs = to_jobs(config, project=project, region=region)
    client = scheduler_v1.CloudSchedulerClient()
    plan = apply_jobs(client, parent(project, region), jobs, dry_run=dry_run)
    verb = "would" if dry_run else "did"
    for name in plan.create:
        typer.echo(f"{verb} create {name}")
    for name, fields in plan.update.items():
        typer.echo(f"{verb} update {name}: {', '.join(fields)}")
    for name in plan.unchanged:
        typer.echo(f"unchanged {name}")
