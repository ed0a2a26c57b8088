"""`guesthub listen`: hold the Mews WebSocket (the Cloud Run container runs this)."""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

import typer

from shared.cli.common import command_settings
from shared.listener.service import serve


def register(app: typer.Typer) -> None:
    @app.command("listen")
    def listen(
        port: Annotated[
            int, typer.Option(help="Health endpoint port (Cloud Run sets $PORT).")
        ] = int(os.environ.get("PORT", "8080")),
    ) -> None:
        """Store Mews WebSocket events in the inbox; catch up after every reconnect."""
        settings = command_settings()
        asyncio.run(serve(settings, port=port))
