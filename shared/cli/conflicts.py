"""`guesthub sync conflicts`: the newest push conflicts as a table.

Each row is one field both Mews and staff changed (who won, both values), or a push Mews
refused. Read through ``public.guest_conflicts_recent`` (the ``guest_conflicts`` view).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from shared.cli.common import command_settings
from shared.db.connect import open_store

RESOLUTIONS = {
    "mews_won": ("Mews won", "yellow"),
    "local_won": ("staff won", "green"),
    "refused_by_mews": ("refused by Mews", "red"),
}


def _value(value: Any) -> Text:
    if value is None or value == "":
        return Text("(empty)", style="dim")
    if isinstance(value, str):
        return Text(value)
    return Text(json.dumps(value, ensure_ascii=False, sort_keys=True))


def conflicts_table(conflicts: list[dict[str, Any]]) -> Table:
    table = Table(title=f"Push conflicts (newest {len(conflicts)})", title_justify="left")
    table.add_column("When (UTC)", no_wrap=True)
    table.add_column("Guest")
    table.add_column("Field", no_wrap=True)
    table.add_column("Staff value")
    table.add_column("Mews value")
    table.add_column("Resolution", no_wrap=True)
    for c in conflicts:
        label, style = RESOLUTIONS.get(c["resolution"], (c["resolution"], ""))
        when = datetime.fromisoformat(c["created_at"]).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(
            when,
            Text(c.get("guest_name") or str(c["guest_mews_id"])),
            Text(c.get("field") or "(whole edit)"),
            _value(c.get("local_value")),
            _value(c.get("mews_value")),
            Text(label, style=style),
        )
    return table


def conflicts_command(
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=1000, help="How many, newest first.")
    ] = 20,
) -> None:
    """List recent push conflicts: field, staff and Mews values, who won."""
    settings = command_settings()

    async def main() -> list[dict[str, Any]]:
        store = await open_store(settings)
        try:
            rows: list[dict[str, Any]] = await store.call("guest_conflicts_recent", p_limit=limit)
            return rows
        finally:
            await store.aclose()

    conflicts = asyncio.run(main())
    console = Console()
    if not conflicts:
        console.print("No push conflicts.")
        return
    console.print(conflicts_table(conflicts))
