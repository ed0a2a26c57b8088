"""`guesthub score` and `guesthub report --html PATH`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from shared.cli.common import command_settings
from shared.db.connect import open_store
from shared.db.store import Store
from shared.quality.job import score_profiles
from shared.quality.report import render
from shared.settings import Settings
from shared.sync.liveness import live_run

console = Console(stderr=True)


async def run_scoring(settings: Settings, *, parts: int = 2) -> dict[str, int]:
    store = await open_store(settings)
    try:
        async with live_run(store, "score_profiles") as run:
            await score_profiles(store, run, parts=parts)
        return dict(run.counts)
    finally:
        await store.aclose()


async def write_report(store: Store, path: Path, *, enterprise_id: str | None = None) -> list[Path]:
    """One page per enterprise (``path`` itself when there is one)."""
    enterprises = await store.call("quality_enterprises")
    if enterprise_id:
        enterprises = [e for e in enterprises if e["id"] == enterprise_id]
    written = []
    for index, enterprise in enumerate(enterprises):
        data = await store.call("quality_report", p_enterprise_id=enterprise["id"])
        target = path if index == 0 else path.with_name(f"{path.stem}-{index + 1}{path.suffix}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render(data), encoding="utf-8")
        written.append(target)
    return written


def register(app: typer.Typer) -> None:
    @app.command("score")
    def score(
        parts: Annotated[int, typer.Option(help="Connections sharing a full rescore.")] = 2,
    ) -> None:
        """Enrich changed profiles, find duplicates, rescore every guest, snapshot the day."""
        counts = asyncio.run(run_scoring(command_settings(), parts=parts))
        console.print(f"scored: {counts}")

    @app.command("report")
    def report(
        html: Annotated[Path, typer.Option("--html", help="Where to write the page.")] = Path(
            "report.html"
        ),
        enterprise: Annotated[str | None, typer.Option(help="Only this enterprise id.")] = None,
    ) -> None:
        """Write the data-quality report as a self-contained HTML page."""
        settings = command_settings()

        async def main() -> list[Path]:
            store = await open_store(settings)
            try:
                return await write_report(store, html, enterprise_id=enterprise)
            finally:
                await store.aclose()

        for path in asyncio.run(main()):
            typer.echo(str(path.resolve()))
