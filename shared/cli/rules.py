"""`guesthub rules`: one enterprise's rule set as a YAML file, through the frontend's functions.

    guesthub rules export --enterprise ID [--version N] [-o rules/alpha.yaml]
    guesthub rules validate rules/alpha.yaml            # offline: every problem, line by line
    guesthub rules dry-run rules/alpha.yaml             # draft, replace, dry run, discard
    guesthub rules apply rules/alpha.yaml               # draft, replace; prints the draft's id
    guesthub rules enable RULE_SET_ID                   # retire the enabled set, rescore
    guesthub rules history --enterprise ID

Every command but ``validate`` calls the SQL functions a frontend calls
(``quality_draft_rule_set``, ``quality_rules_replace``, ``quality_dry_run``,
``quality_enable_rule_set``, ``quality_discard_draft``, ``quality_rule_sets_list``,
``quality_rules_of``), so the same checks and row-level security apply: as the service
(``DATABASE_URL``, or ``SUPABASE_URL`` + ``SUPABASE_SERVICE_ROLE_KEY``), or as a signed-in user
with their JWT (``GUESTHUB_USER_JWT`` with ``SUPABASE_URL`` and ``SUPABASE_ANON_KEY``), who may
change only the rules of enterprises they administer.
"""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from shared.cli.common import command_settings
from shared.db.connect import open_store
from shared.db.store import Store, StoreError, SupabaseTransport
from shared.quality import rules_file
from shared.quality.rules_file import RulesFile, RulesFileError, entry_of, rule_of
from shared.settings import Settings

app = typer.Typer(
    no_args_is_help=True, help="Rules as code: export, validate, dry-run, apply, enable, history."
)


def out() -> Console:
    """Standard output, as wide as the terminal (or ``COLUMNS``) is now."""
    return Console(highlight=False)


def err() -> Console:
    """Standard error, for refusals and what to do next."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


T = TypeVar("T")

UserJwt = Annotated[
    str | None,
    typer.Option(
        "--user-jwt",
        envvar="GUESTHUB_USER_JWT",
        help="Act as this signed-in Supabase user (their access token; prefer the variable).",
        show_default=False,
    ),
]
AnonKey = Annotated[
    str | None,
    typer.Option(
        "--anon-key",
        envvar="SUPABASE_ANON_KEY",
        help="The project's anon (publishable) key, sent with a user's JWT.",
        show_default=False,
    ),
]
Enterprise = Annotated[str, typer.Option("--enterprise", "-e", help="The enterprise id.")]
RulesPath = Annotated[
    Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="A rules file (YAML).")
]


class CommandError(Exception):
    """A command cannot go on; the message says why, in one line."""


@dataclass(frozen=True)
class Caller:
    """Who a command acts as: the service (from the settings) or a user (their JWT)."""

    user_jwt: str | None = None
    anon_key: str | None = None


async def user_store(
    url: str, anon_key: str, user_jwt: str, *, http_timeout: float = 60.0
) -> Store:
    """The Supabase API as a signed-in user: the anon key as ``apikey``, the user's JWT as the
    bearer, so PostgREST runs every call as ``authenticated`` for that user."""
    from supabase import AsyncClientOptions, acreate_client

    http = httpx.AsyncClient(timeout=http_timeout)
    options = AsyncClientOptions(
        auto_refresh_token=False,
        persist_session=False,
        httpx_client=http,
        headers={**AsyncClientOptions().headers, "Authorization": f"Bearer {user_jwt}"},
    )
    client = await acreate_client(url, anon_key, options=options)
    with warnings.catch_warnings():
        # supabase passes postgrest arguments that postgrest itself deprecates
        warnings.filterwarnings(
            "ignore", r"The '(timeout|verify|proxy)' parameter", DeprecationWarning
        )
        _ = client.postgrest
    return Store(SupabaseTransport(client, http))


async def open_caller_store(settings: Settings, caller: Caller) -> Store:
    """The store a command uses: the service's (settings), or the user's when a JWT is given."""
    if caller.user_jwt is None:
        return await open_store(settings)
    if not settings.supabase_url or not caller.anon_key:
        raise CommandError("a user's JWT needs SUPABASE_URL and SUPABASE_ANON_KEY")
    return await user_store(settings.supabase_url, caller.anon_key, caller.user_jwt)


def run_with_store(
    caller: Caller, work: Callable[[Store], Awaitable[T]], settings: Settings | None = None
) -> T:
    """Run ``work`` with the caller's store; a refusal is one red line and exit code 1."""
    settings = settings or command_settings()

    async def main() -> T:
        store = await open_caller_store(settings, caller)
        try:
            return await work(store)
        finally:
            await store.aclose()

    try:
        return asyncio.run(main())
    except (StoreError, CommandError) as exc:
        err().print(str(exc), style="red", markup=False)
        raise typer.Exit(code=1) from exc


def read_rules(path: Path) -> RulesFile:
    """A rules file, or every problem in it and exit code 1."""
    try:
        return rules_file.load(path.read_text(encoding="utf-8"), str(path))
    except RulesFileError as exc:
        for problem in exc.problems:
            err().print(problem, markup=False)
        raise typer.Exit(code=1) from exc


# --- use cases -------------------------------------------------------------------------------


def pick_version(sets: list[dict[str, Any]], version: int | None) -> dict[str, Any]:
    """The enabled set, or the one of this version."""
    for rule_set in sets:
        if (rule_set["status"] == "enabled") if version is None else rule_set["version"] == version:
            return rule_set
    raise CommandError(
        "no enabled rule set" if version is None else f"no rule set of version {version}"
    )


async def export_rules(store: Store, enterprise_id: str, version: int | None) -> str:
    """The YAML of an enterprise's enabled rules (or of one version)."""
    sets = await store.call("quality_rule_sets_list", p_enterprise_id=enterprise_id)
    chosen = pick_version(sets, version)
    data = await store.call("quality_rules_of", p_rule_set_id=chosen["id"])
    rules = tuple(rule_of(entry) for entry in data["rules"])
    header = [
        f"guesthub rules: enterprise {enterprise_id}, version {data['version']} ({data['status']})",
        "check: guesthub rules validate FILE; try: guesthub rules dry-run FILE;"
        " then: guesthub rules apply FILE and guesthub rules enable ID",
    ]
    stored = data.get("duplicate_threshold")  # a real: 0.92 reads 0.9200000166893005
    threshold = None if stored is None else round(float(stored), 6)
    return rules_file.dump(RulesFile(enterprise_id, rules, data["note"], threshold), header=header)


async def create_draft(store: Store, rules: RulesFile, note: str) -> dict[str, Any]:
    """A new draft holding exactly these rules; discarded again if they are refused."""
    draft: dict[str, Any] = await store.call(
        "quality_draft_rule_set", p_enterprise_id=rules.enterprise_id, p_note=note
    )
    try:
        replaced = await store.call(
            "quality_rules_replace",
            p_rule_set_id=draft["id"],
            p_rules=[entry_of(rule) for rule in rules.rules],
        )
        if rules.duplicate_threshold is not None:
            await store.call(
                "quality_rule_set_duplicate_threshold",
                p_rule_set_id=draft["id"],
                p_threshold=rules.duplicate_threshold,
            )
    except BaseException:
        await store.call("quality_discard_draft", p_rule_set_id=draft["id"])
        raise
    return {**draft, "rules": replaced["rules"]}


async def dry_run(store: Store, rules: RulesFile, note: str) -> dict[str, Any]:
    """What enabling these rules would do; the draft made to find out is discarded."""
    draft = await create_draft(store, rules, note)
    try:
        from shared.quality.passes import dry_run as paged_dry_run  # calls that each fit 8 s

        figures: dict[str, Any] = await paged_dry_run(store, draft["id"])
    finally:
        await store.call("quality_discard_draft", p_rule_set_id=draft["id"])
    return figures


# --- output ----------------------------------------------------------------------------------

DRY_RUN_ROWS = (
    ("guests scored", "guests"),
    ("would change", "changed"),
    ("raised", "raised"),
    ("lowered", "lowered"),
    ("average change", "average_delta"),
    ("largest drop", "largest_drop"),
    ("largest rise", "largest_rise"),
)


def dry_run_table(figures: dict[str, Any]) -> Table:
    table = Table(title="Dry run (nothing was written)", title_justify="left", show_header=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for label, key in DRY_RUN_ROWS:
        table.add_row(label, str(figures.get(key)))
    table.add_row(
        "average score", f"{figures.get('average_before')} → {figures.get('average_after')}"
    )
    table.add_row(
        "profiles under 50", f"{figures.get('below_50_before')} → {figures.get('below_50_after')}"
    )
    return table


def _day(value: str | None) -> str:
    return (value or "")[:16].replace("T", " ")


def history_table(sets: list[dict[str, Any]]) -> Table:
    """Versions newest first; the id (what `enable` takes) is never wrapped."""
    table = Table(
        title="Rule set versions (newest first)",
        title_justify="left",
        box=box.SIMPLE,
        collapse_padding=True,
        pad_edge=False,
    )
    table.add_column("version", justify="right")
    table.add_column("status")
    table.add_column("created (UTC)", no_wrap=True)
    table.add_column("enabled (UTC)", no_wrap=True)
    table.add_column("rules", justify="right")
    table.add_column("note", min_width=10)
    authors = any(s.get("created_by") for s in sets)
    if authors:
        table.add_column("by")
    table.add_column("id", no_wrap=True, min_width=36)
    styles = {"enabled": "green", "draft": "yellow", "retired": "dim"}
    for s in sets:
        cells: list[str | Text] = [
            str(s["version"]),
            Text(s["status"], style=styles.get(s["status"], "")),
            _day(s["created_at"]),
            _day(s["enabled_at"]),
            str(s["rules"]),
            Text(s.get("note") or ""),
        ]
        if authors:
            cells.append(Text(s.get("created_by") or ""))
        table.add_row(*cells, s["id"])
    return table


# --- commands --------------------------------------------------------------------------------


@app.command("export")
def export_command(
    enterprise: Enterprise,
    version: Annotated[
        int | None, typer.Option(help="This version instead of the enabled one.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here (default: stdout).")
    ] = None,
    user_jwt: UserJwt = None,
    anon_key: AnonKey = None,
) -> None:
    """Write an enterprise's enabled rules (or one version's) as YAML."""
    text = run_with_store(
        Caller(user_jwt, anon_key), lambda store: export_rules(store, enterprise, version)
    )
    if output is None:
        typer.echo(text, nl=False)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    err().print(f"wrote {output}")


@app.command("validate")
def validate_command(
    files: Annotated[
        list[Path], typer.Argument(exists=True, dir_okay=False, help="Rules files (YAML).")
    ],
) -> None:
    """Check rules files offline: every problem, with its line, rule and key."""
    failed = False
    for path in files:
        try:
            rules = rules_file.load(path.read_text(encoding="utf-8"), str(path))
        except RulesFileError as exc:
            for problem in exc.problems:
                err().print(problem, markup=False)
            failed = True
            continue
        out().print(f"{path}: {len(rules.rules)} rules, valid", markup=False)
    if failed:
        raise typer.Exit(code=1)


@app.command("dry-run")
def dry_run_command(
    file: RulesPath,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    user_jwt: UserJwt = None,
    anon_key: AnonKey = None,
) -> None:
    """What enabling a file's rules would do (a draft is made, measured and discarded)."""
    rules = read_rules(file)
    figures = run_with_store(
        Caller(user_jwt, anon_key), lambda store: dry_run(store, rules, f"dry run of {file.name}")
    )
    if as_json:
        typer.echo(json.dumps(figures, indent=2))
    else:
        out().print(dry_run_table(figures))


@app.command("apply")
def apply_command(
    file: RulesPath,
    user_jwt: UserJwt = None,
    anon_key: AnonKey = None,
) -> None:
    """Make a draft holding a file's rules (enable it with `guesthub rules enable ID`)."""
    rules = read_rules(file)
    note = rules.note or f"from {file.name}"
    draft = run_with_store(
        Caller(user_jwt, anon_key), lambda store: create_draft(store, rules, note)
    )
    err().print(f"draft version {draft['version']} with {draft['rules']} rules; enable it with:")
    err().print(f"  guesthub rules enable {draft['id']}", markup=False)
    typer.echo(draft["id"])


@app.command("enable")
def enable_command(
    rule_set_id: Annotated[str, typer.Argument(help="The draft's id (from apply or history).")],
    user_jwt: UserJwt = None,
    anon_key: AnonKey = None,
) -> None:
    """Enable a draft: the enabled set is retired and every guest rescored (in calls that each
    fit the REST API's statement timeout)."""
    from shared.quality.passes import enable_rule_set

    result = run_with_store(
        Caller(user_jwt, anon_key),
        lambda store: enable_rule_set(store, rule_set_id),
    )
    out().print(
        f"enabled {rule_set_id}: {result['scored']} guests scored, {result['changed']} changed;"
        f" average now {result['snapshot']['average']}",
        markup=False,
    )


@app.command("history")
def history_command(
    enterprise: Enterprise,
    user_jwt: UserJwt = None,
    anon_key: AnonKey = None,
) -> None:
    """List an enterprise's rule set versions: status, dates, note, rule count."""
    sets = run_with_store(
        Caller(user_jwt, anon_key),
        lambda store: store.call("quality_rule_sets_list", p_enterprise_id=enterprise),
    )
    if not sets:
        out().print("No rule sets (none readable for this enterprise).")
        return
    out().print(history_table(sets))


def register(root: typer.Typer) -> None:
    """Add `guesthub rules` to the root command."""
    root.add_typer(app, name="rules")
