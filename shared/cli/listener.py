"""`guesthub listen`: hold the Mews WebSocket (the Cloud Run container runs this)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from shared.cli.common import command_settings

app = typer.Typer()


@app.command("listen")
def listen(
    port: Annotated[
        int, typer.Option(envvar="PORT", help="Health endpoint port (Cloud Run sets $PORT).")
    ] = 8080,
) -> None:
    """Store Mews WebSocket events in the inbox; catch up after every reconnect."""
    from shared.listener.service import serve  # uvicorn, starlette, websockets

    settings = command_settings()
    asyncio.run(serve(settings, port=port))
