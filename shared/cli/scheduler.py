"""`guesthub scheduler apply`: scheduler.yaml → Cloud Scheduler jobs.

``--dry-run`` needs no Google credentials: with them it compares with the project's jobs,
without them it lists every job it would create or update, offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from shared.cli.errors import CommandError, ExitCode

if TYPE_CHECKING:
    from google.cloud import scheduler_v1

    from shared.scheduler.config import SchedulerFile

app = typer.Typer(no_args_is_help=True)


@app.command("apply")
def apply(
    project: Annotated[str, typer.Option(help="Google Cloud project id.")],
    region: Annotated[str, typer.Option(help="Region of the functions and jobs.")],
    file: Annotated[
        Path | None,
        typer.Option(
            exists=True, dir_okay=False, help="The jobs file (default: the one guesthub ships)."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only show what would change (no credentials needed).")
    ] = False,
) -> None:
    """Create missing jobs and update changed ones (uses Application Default Credentials)."""
    from shared.scheduler.apply import apply_jobs
    from shared.scheduler.config import parent, to_jobs

    if file is None:
        from shared.package_data import scheduler_file

        file = scheduler_file()
    config = _load(file, project=project, region=region)
    jobs = to_jobs(config, project=project, region=region)
    plan = apply_jobs(_client(dry_run), parent(project, region), jobs, dry_run=dry_run)
    verb = "would" if dry_run else "did"
    for name in plan.create:
        typer.echo(f"{verb} create {name}")
    for name, fields in plan.update.items():
        typer.echo(f"{verb} update {name}: {', '.join(fields)}")
    for name in plan.unchanged:
        typer.echo(f"unchanged {name}")
    for job in (j for j in jobs if j.name in plan.planned):
        typer.echo(
            f"would create or update {job.name}: {job.schedule} ({job.time_zone})"
            f" → {job.http_target.uri}"
        )


def _load(file: Path, *, project: str, region: str) -> SchedulerFile:
    import yaml
    from pydantic import ValidationError

    from shared.scheduler.config import load

    try:
        return load(file, project=project, region=region)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        raise CommandError(f"{file} is invalid: {problems}", ExitCode.CONFIGURATION) from exc
    except (yaml.YAMLError, KeyError, ValueError) as exc:
        raise CommandError(f"{file} is invalid: {exc}", ExitCode.CONFIGURATION) from exc


def _client(dry_run: bool) -> scheduler_v1.CloudSchedulerClient | None:
    """The Cloud Scheduler client on Application Default Credentials; for a dry run without
    credentials, None (the plan is then not compared with the project's jobs)."""
    from google.auth.exceptions import DefaultCredentialsError
    from google.cloud import scheduler_v1

    try:
        return scheduler_v1.CloudSchedulerClient()
    except DefaultCredentialsError:
        if not dry_run:
            raise  # the error boundary says how to get credentials
        typer.echo(
            "no Google credentials: listing every job without comparing with the project's"
            " (`gcloud auth application-default login` to compare)",
            err=True,
        )
        return None
