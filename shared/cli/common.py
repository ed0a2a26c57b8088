"""What every command needs: settings read once, logging configured, secrets known to the
masker and to the error boundary; and human output for counts."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

from shared.cli.errors import remember
from shared.logs import configure_logging
from shared.settings import Settings, load_settings, secret_values

if TYPE_CHECKING:
    from rich.table import Table

    from shared.db.store import Store

T = TypeVar("T")


def command_settings() -> Settings:
    """Read the environment (the CLI is an entry point) and set up logging."""
    settings = load_settings()
    remember(settings)
    configure_logging(
        level=settings.log_level, json=settings.log_json, secrets=secret_values(settings)
    )
    return settings


def with_store(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    """Run ``work`` with a store opened on the settings' database, closed afterwards."""
    from shared.db.connect import open_store  # the driver: only for commands that use it

    async def main() -> T:
        store = await open_store(settings)
        try:
            return await work(store)
        finally:
            await store.aclose()

    return asyncio.run(main())


def counts_table(title: str, counts: Mapping[str, int]) -> Table:
    """Counts as a two-column rich table ("customers fetched | 250"), zeros included."""
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_header=False, min_width=len(title) + 4)
    table.add_column("what")
    table.add_column("count", justify="right")
    for name, value in sorted(counts.items()):
        table.add_row(name.replace("_", " "), f"{value:,}")
    return table
