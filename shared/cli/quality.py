"""`guesthub score` and `guesthub report --html PATH`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from shared.cli.common import command_settings, counts_table
from shared.cli.errors import CommandError, ExitCode
from shared.db.connect import describe_database, open_store
from shared.db.store import Store
from shared.settings import Settings

if TYPE_CHECKING:
    from shared.connections.runner import JobResult

app = typer.Typer()
console = Console(stderr=True)
NO_ENTERPRISES = "no enterprises to score in {where}: load them first with `guesthub sync backfill`"


async def run_scoring(settings: Settings, *, parts: int = 2) -> JobResult | None:
    """Score every enterprise; None when there is none (nothing is recorded then)."""
    from shared.connections.runner import run_database_job
    from shared.quality.job import score_profiles  # phonenumbers, email_validator
    from shared.sync.runs import Run

    async def score(store: Store, run: Run) -> None:
        await score_profiles(store, run, parts=parts)

    store = await open_store(settings)
    try:
        if not await store.call("quality_enterprises"):
            return None
        return await run_database_job(store, "score_profiles", score)
    finally:
        await store.aclose()


async def write_report(
    store: Store, path: Path, *, enterprise_id: str | None = None, where: str = "the database"
) -> list[Path]:
    """One page per enterprise (``path`` itself when there is one)."""
    from shared.quality.report import render

    written = []
    for index, enterprise in enumerate(await report_enterprises(store, enterprise_id, where)):
        data = await store.call("quality_report", p_enterprise_id=enterprise["id"])
        # the weighed suggestions at the enterprise's threshold, best first
        weighed = await store.call(
            "quality_duplicate_suggestions", p_enterprise_id=enterprise["id"], p_limit=10
        )
        data.update(duplicate_pairs=weighed["pairs"], duplicates=weighed["total"])
        # values the last full pass found too common to pair on (an agency's e-mail)
        state = await store.call("quality_duplicates_model", p_chain_id=enterprise["chain_id"])
        data.update(
            duplicate_values_uninformative=((state or {}).get("model") or {}).get("skipped")
        )
        target = path if index == 0 else path.with_name(f"{path.stem}-{index + 1}{path.suffix}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render(data), encoding="utf-8")
        written.append(target)
    return written


async def report_enterprises(
    store: Store, enterprise_id: str | None, where: str
) -> list[dict[str, Any]]:
    """The enterprises to report on; :class:`CommandError` when there is none (or no such one)."""
    enterprises: list[dict[str, Any]] = await store.call("quality_enterprises")
    if not enterprises:
        raise CommandError(
            f"nothing to report: {where} has no enterprises yet; load them with"
            " `guesthub sync backfill`, then run `guesthub score`"
        )
    if enterprise_id is None:
        return enterprises
    chosen = [e for e in enterprises if str(e["id"]) == enterprise_id]
    if not chosen:
        known = ", ".join(f"{e['id']} ({e['name']})" for e in enterprises)
        raise CommandError(f"no enterprise {enterprise_id} in {where}; known: {known}")
    return chosen


@app.command("score")
def score(
    parts: Annotated[int, typer.Option(min=1, help="Connections sharing a full rescore.")] = 2,
) -> None:
    """Enrich changed profiles, find duplicates, rescore every guest, snapshot the day."""
    settings = command_settings()
    result = asyncio.run(run_scoring(settings, parts=parts))
    if result is None:
        console.print(NO_ENTERPRISES.format(where=describe_database(settings)))
        return
    console.print(counts_table("Scored", result.counts))
    if result.status == "partial":  # an enterprise failed or backs off: named, exit 6
        raise CommandError(f"scoring left work for later: {result.error}", ExitCode.ATTENTION)
    if result.status != "succeeded":
        raise CommandError(f"scoring {result.status}: {result.error}")


@app.command("report")
def report(
    html: Annotated[Path, typer.Option("--html", help="Where to write the page.")] = Path(
        "report.html"
    ),
    enterprise: Annotated[str | None, typer.Option(help="Only this enterprise id.")] = None,
) -> None:
    """Write the data-quality report as a self-contained HTML page (one per enterprise)."""
    settings = command_settings()

    async def main() -> list[Path]:
        store = await open_store(settings)
        try:
            return await write_report(
                store, html, enterprise_id=enterprise, where=describe_database(settings)
            )
        finally:
            await store.aclose()

    for path in asyncio.run(main()):
        typer.echo(str(path.resolve()))
