"""What every command needs: settings read once, logging configured, secrets known to the
masker and to the error boundary; and human output for counts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from shared.cli.errors import remember
from shared.logs import configure_logging
from shared.settings import Settings, load_settings, secret_values

if TYPE_CHECKING:
    from rich.table import Table


def command_settings() -> Settings:
    """Read the environment (the CLI is an entry point) and set up logging."""
    settings = load_settings()
    remember(settings)
    configure_logging(
        level=settings.log_level, json=settings.log_json, secrets=secret_values(settings)
    )
    return settings


def counts_table(title: str, counts: Mapping[str, int]) -> Table:
    """Counts as a two-column rich table ("customers fetched | 250"), zeros included."""
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_header=False, min_width=len(title) + 4)
    table.add_column("what")
    table.add_column("count", justify="right")
    for name, value in sorted(counts.items()):
        table.add_row(name.replace("_", " "), f"{value:,}")
    return table
