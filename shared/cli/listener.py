"""`guesthub listen`: hold one Mews WebSocket per active connection and (unless
--no-realtime) run the real-time worker, which drains the inbox and pushes staff edits as they
happen (the Cloud Run container runs this)."""

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
    refresh_seconds: Annotated[
        float,
        typer.Option(
            envvar="LISTENER_REFRESH_SECONDS",
            min=1.0,
            help="How often the active connections are read again (sockets started/stopped).",
        ),
    ] = 60.0,
    max_disconnected_seconds: Annotated[
        float,
        typer.Option(
            envvar="LISTENER_MAX_DISCONNECTED_SECONDS",
            min=1.0,
            help="Health answers 503 once a connection's socket has been down this long "
            "(a token Mews refused does not count).",
        ),
    ] = 300.0,
    realtime: Annotated[
        bool,
        typer.Option(
            envvar="LISTENER_REALTIME",
            help="Drain the inbox and push staff edits as they happen (--no-realtime: the "
            "scheduled jobs alone do).",
        ),
    ] = True,
) -> None:
    """Store Mews WebSocket events in the inbox, one socket per active connection; catch up
    after every reconnect; /healthz shows each connection. With --realtime (the default),
    process inbox events and push staff edits as they arrive (LISTEN on DATABASE_URL)."""
    from shared.listener.service import serve  # uvicorn, starlette, websockets

    settings = command_settings()
    asyncio.run(
        serve(
            settings,
            port=port,
            refresh_seconds=refresh_seconds,
            max_disconnected_seconds=max_disconnected_seconds,
            realtime=realtime,
        )
    )
