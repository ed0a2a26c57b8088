"""`guesthub connections`: the Mews connections this deployment serves (one per AccessToken).

Connections arrive by Integration webhooks; `add` registers a property's token by hand (kept
encrypted with TOKEN_ENCRYPTION_KEY); the environment's MEWS_ACCESS_TOKEN is one connection
too. Tokens are never printed.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from shared.cli.common import command_settings, with_store
from shared.cli.errors import CommandError, ExitCode
from shared.db.store import Store, StoreError
from shared.settings import Settings

app = typer.Typer(no_args_is_help=True)
console = Console()

IdArgument = Annotated[str, typer.Argument(help="The connection's id (or its name).")]


async def _health(store: Store, settings: Settings) -> list[dict[str, Any]]:
    from shared.connections.registry import register_environment

    await register_environment(store, settings)
    rows: list[dict[str, Any]] = await store.call("connections_health")
    return rows


def _resolve(rows: list[dict[str, Any]], wanted: str) -> dict[str, Any]:
    matches = [r for r in rows if wanted in (str(r["integration_id"]), r.get("name"))]
    if not matches:
        matches = [r for r in rows if str(r["integration_id"]).startswith(wanted)]
    if len(matches) != 1:
        reason = "no connection" if not matches else "several connections match"
        raise CommandError(f"{reason} {wanted!r}: see `guesthub connections list`", ExitCode.USAGE)
    return matches[0]


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{int(seconds)} s"
    if seconds < 7200:
        return f"{int(seconds // 60)} min"
    return f"{seconds / 3600:.1f} h"


@app.command("list")
def list_connections(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every connection: id, name, source, status, enterprises."""
    settings = command_settings()
    rows = with_store(settings, lambda store: _health(store, settings))
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2, default=str) + "\n")
        return
    table = Table("id", "name", "source", "status", "enterprises", "portfolio")
    for r in rows:
        table.add_row(
            str(r["integration_id"]),
            r.get("name") or "-",
            r["source"],
            r["status"],
            str(len(r.get("enterprise_ids") or [])),
            "yes" if r.get("is_portfolio") else "",
        )
    console.print(table)
    if not rows:
        console.print("no connection: set MEWS_ACCESS_TOKEN or run `guesthub connections add`")


@app.command("health")
def health(
    connection: Annotated[str | None, typer.Argument(help="One connection (id or name).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Per connection: status, last successful poll, lag behind Mews, requests in the last
    30 s, 429s, 401s, open quarantined records. Exit code 6 when one is not healthy."""
    settings = command_settings()
    rows = with_store(settings, lambda store: _health(store, settings))
    if connection is not None:
        rows = [_resolve(rows, connection)]
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2, default=str) + "\n")
    else:
        table = Table(
            "connection", "status", "last poll", "lag", "req/30 s", "429s", "401s", "quarantined"
        )
        for r in rows:
            table.add_row(
                r.get("name") or str(r["integration_id"]),
                r["status"],
                str(r.get("last_poll_at") or "never")[:19],
                _ago(r.get("lag_seconds")),
                str(r.get("requests_last_30s", 0)),
                str(r.get("rate_limited", 0)),
                str(r.get("unauthorized", 0)),
                str(r.get("quarantined", 0)),
            )
        console.print(table)
    unhealthy = [r for r in rows if r["status"] in ("unauthorized", "no_token")]
    if unhealthy:
        for r in unhealthy:
            console.print(
                f"[yellow]{r.get('name') or r['integration_id']}: {r['status']}"
                + (
                    " (Mews refuses its token; its jobs are paused until the token changes)"
                    if r["status"] == "unauthorized"
                    else " (no token: it arrives with the IntegrationCreated webhook)"
                )
                + "[/yellow]"
            )
        raise typer.Exit(int(ExitCode.ATTENTION))


@app.command("add")
def add(
    name: Annotated[
        str | None, typer.Option(help="A name for people (default: from Mews).")
    ] = None,
) -> None:
    """Register one property's AccessToken by hand, read from standard input (never from the
    command line, where it would stay in the shell history); kept encrypted."""
    from shared.connections.registry import UnusableConnectionError, register_manual

    settings = command_settings()
    if sys.stdin.isatty():
        token = typer.prompt("AccessToken", hide_input=True)
    else:
        token = sys.stdin.readline()
    token = token.strip()
    if not token:
        raise CommandError("no AccessToken given on standard input", ExitCode.USAGE)
    try:
        result = with_store(settings, lambda store: register_manual(store, settings, token, name))
    except UnusableConnectionError as exc:
        raise CommandError(str(exc), ExitCode.CONFIGURATION) from None
    verb = "added" if result.get("created") else "already known; token updated"
    console.print(f"connection {result['integration_id']} {verb} ({result['status']})")
    console.print("its enterprises are asked of Mews by the next job (or `guesthub sync backfill`)")


def _set_status(wanted: str, status: str) -> None:
    settings = command_settings()

    async def work(store: Store) -> dict[str, Any]:
        chosen = _resolve(await _health(store, settings), wanted)
        try:
            result: dict[str, Any] = await store.call(
                "connection_set_status",
                p_integration_id=str(chosen["integration_id"]),
                p_status=status,
            )
        except StoreError as exc:
            if exc.code == "P0002":
                raise CommandError(
                    f"connection {wanted!r} is {chosen['status']}: only an active or disabled "
                    "connection can be disabled or enabled",
                    ExitCode.USAGE,
                ) from None
            raise
        return result

    result = with_store(settings, work)
    console.print(f"connection {result['integration_id']}: {result['status']}")


@app.command("disable")
def disable(connection: IdArgument) -> None:
    """Pause a connection: no job serves it until it is enabled."""
    _set_status(connection, "disabled")


@app.command("enable")
def enable(connection: IdArgument) -> None:
    """Resume a connection an operator disabled."""
    _set_status(connection, "active")


@app.command("keygen")
def keygen() -> None:
    """Print a new TOKEN_ENCRYPTION_KEY (Fernet) for the deployment's secrets."""
    from cryptography.fernet import Fernet

    sys.stdout.write(Fernet.generate_key().decode() + "\n")
