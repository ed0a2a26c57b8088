"""`guesthub status`: one screen of sync health per enterprise; exit code 6 when something
needs attention.

The figures and the verdict come from ``public.sync_status`` (one call): the last run of each
job, the inbox (depth, oldest waiting event, dead letters), open quarantined records, conflicts
of the last 7 days, the Mews request budget and refused tokens, the lag behind Mews, the score
average, and ``attention`` — what the database judged needs someone (dead letters, a refused
token, a failed last run, more than 30 min behind Mews, an inbox event waiting more than
15 min, a first load begun and not completed — the data is incomplete —, a run recorded running
whose process is gone). As the service every enterprise is shown; as a user (``GUESTHUB_USER_JWT``) the
enterprises they may read, through row-level security, without token hashes or error texts.
``--json`` prints the same data for monitoring.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from shared.cli.common import command_settings
from shared.cli.rules import AnonKey, Caller, UserJwt, run_with_store
from shared.mews.ratelimit import budget, token_key
from shared.quality.report import age
from shared.settings import Settings

ATTENTION_EXIT_CODE = 6
RUN_STYLES = {
    "succeeded": "green",
    "running": "cyan",
    "skipped": "dim",
    "partial": "yellow",
    "rate_limited": "yellow",
    "failed": "red",
    "abandoned": "red",
}


def needs_attention(status: dict[str, Any]) -> bool:
    """Whether any enterprise of a ``sync_status`` answer needs someone."""
    return any(enterprise.get("attention") for enterprise in status.get("enterprises", []))


def _when(value: str | None) -> str:
    return (value or "—")[:19].replace("T", " ")


def run_word(run: dict[str, Any]) -> str:
    """A run's status; a run still running says whether its process is gone, or its last
    heartbeat, and where it runs (host:pid, the service only)."""
    word = str(run["status"])
    if word != "running":
        return word
    if run.get("gone"):
        word += " (process gone)"
    elif run.get("heartbeat_at"):
        word += f" (heartbeat {_when(run['heartbeat_at'])[11:]})"
    return word + (f" on {run['owner']}" if run.get("owner") else "")


def runs_table(runs: list[dict[str, Any]]) -> Table:
    table = Table(show_edge=False, pad_edge=False, box=None)
    for column in ("job", "last run", "started (UTC)", "finished (UTC)", "error"):
        table.add_column(column, style="bold" if column == "job" else None)
    for run in runs:
        table.add_row(
            run["job"],
            Text(
                run_word(run), style="red" if run.get("gone") else RUN_STYLES.get(run["status"], "")
            ),
            _when(run.get("started_at")),
            _when(run.get("finished_at")),
            Text((run.get("error") or "")[:70]),
        )
    return table


def token_lines(tokens: list[dict[str, Any]], settings: Settings) -> list[str]:
    """Each token's budget use and refusal; the configured token named as such."""
    mine = token_key(settings.mews_access_token.get_secret_value())
    limit = budget(settings.mews_rate_limit, settings.mews_rate_safety_margin)
    lines = []
    for index, token in enumerate(tokens, start=1):
        label = "configured token" if token.get("key") == mine else f"token {index}"
        lowered = token.get("adapted_limit")
        line = f"{label}: {token['used_last_30s']} of {min(limit, lowered or limit)} requests"
        line += " in the last 30 s"
        if lowered is not None and lowered < limit:
            line += f" (lowered from {limit} by Mews' 429s since {_when(token['adapted_at'])})"
        if token.get("paused_until"):
            line += f", paused until {_when(token['paused_until'])} (429)"
        if token.get("unauthorized_since"):
            state = "replaced since" if token.get("superseded") else "jobs paused"
            line += f", REFUSED (401) since {_when(token['unauthorized_since'])}: {state}"
        lines.append(line)
    return lines or ["no Mews requests in the last day"]


def _facts(enterprise: dict[str, Any], settings: Settings) -> Table:
    inbox = enterprise.get("inbox") or {}
    poll = enterprise.get("poll") or {}
    score = enterprise.get("score") or {}
    lag = (
        f"{age(poll['lag_seconds'])} (newest poll high-water mark); stalest:"
        f" {poll['stalest_entity']} {age(poll['stalest_lag_seconds'])}"
        if poll.get("entities")
        else "never polled"
    )
    facts = {
        "inbox": f"{inbox.get('waiting', '—')} waiting, oldest {age(inbox.get('oldest_waiting_seconds'))};"
        f" {inbox.get('dead', '—')} dead letter(s)",
        "quarantine": f"{enterprise['quarantine_open']} open"
        f" (+{enterprise.get('quarantine_unscoped') or 0} not tied to an enterprise)",
        "conflicts": f"{enterprise['conflicts_7d']} in the last 7 days",
        "behind Mews": lag,
        "Mews budget": "\n".join(token_lines(enterprise.get("tokens") or [], settings)),
        "score": f"average {score.get('average')} over {score.get('guests', 0):,} guests",
    }
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for name, value in facts.items():
        table.add_row(name, Text(value))
    return table


def enterprise_panel(enterprise: dict[str, Any], settings: Settings) -> Panel:
    """One enterprise's sync health: facts, last runs, and what needs attention."""
    attention = enterprise.get("attention") or []
    parts: list[Any] = [_facts(enterprise, settings), Text("")]
    parts.append(runs_table(enterprise["runs"]) if enterprise["runs"] else Text("no runs yet"))
    if attention:
        parts.append(Text(""))
        parts.extend(Text(f"• {item['message']}", style="red") for item in attention)
    verdict = Text("needs attention", style="bold red") if attention else Text("OK", style="green")
    title = Text.assemble((enterprise["name"] or enterprise["id"], "bold"), " — ", verdict)
    return Panel(
        Group(*parts), title=title, title_align="left", border_style="red" if attention else "green"
    )


def status_command(
    enterprise: Annotated[str | None, typer.Option(help="Only this enterprise id.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
    user_jwt: UserJwt = None,
    anon_key: AnonKey = None,
) -> None:
    """Sync health per enterprise; exit code 6 when something needs attention."""
    settings = command_settings()
    status: dict[str, Any] = run_with_store(
        Caller(user_jwt, anon_key),
        lambda store: store.call("sync_status", p_enterprise_id=enterprise),
        settings,
    )
    if as_json:
        typer.echo(json.dumps(status, indent=2, ensure_ascii=False))
    else:
        console = Console(highlight=False)
        for item in status["enterprises"]:
            console.print(enterprise_panel(item, settings))
        if not status["enterprises"]:
            console.print("No enterprise (none readable).")
    if needs_attention(status):
        raise typer.Exit(code=ATTENTION_EXIT_CODE)


app = typer.Typer(no_args_is_help=True)
app.command("status")(status_command)


def register(root: typer.Typer) -> None:
    """Add `guesthub status` to the root command."""
    root.command("status")(status_command)
