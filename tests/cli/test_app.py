"""The command tree: help lists every command without importing them, each help text is
complete, and output is for people (tables and sentences, not Python values)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from shared.cli import COMMANDS, app
from shared.settings import load_settings

runner = CliRunner()
HEAVY = (
    "shared.cli.db",
    "shared.cli.demo",
    "shared.cli.sync",
    "shared.simulator",
    "shared.listener",
    "google.cloud.scheduler",
    "google.auth",
    "uvicorn",
    "starlette",
    "psycopg",
    "rich.progress",
    "phonenumbers",
    "email_validator",
)


def test_help_lists_every_command_without_importing_any() -> None:
    script = (
        "import json, sys\n"
        "from typer.testing import CliRunner\n"
        "from shared.cli import app\n"
        "result = CliRunner().invoke(app, ['--help'])\n"
        "print(json.dumps({'output': result.output, 'modules': sorted(sys.modules)}))\n"
    )
    answer = subprocess.run(  # noqa: S603 - our own executables
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    seen = json.loads(answer.stdout)
    for name in COMMANDS:
        assert f" {name} " in seen["output"]
    loaded = [m for m in seen["modules"] if m.startswith(HEAVY)]
    assert loaded == []


def test_the_db_help_lists_each_of_its_commands() -> None:
    listed = runner.invoke(app, ["--help"], env={"COLUMNS": "200"}).output
    line = next(line for line in listed.splitlines() if " db " in line)
    for command in ("migrate", "status", "privileges", "stop"):
        assert command in line
    group = runner.invoke(app, ["db", "--help"], env={"COLUMNS": "200"})
    for command in ("migrate", "status", "privileges", "stop"):
        assert f" {command} " in group.output


def test_the_simulator_has_a_plain_no_rate_limit_flag() -> None:
    result = runner.invoke(app, ["simulator", "--help"], env={"COLUMNS": "200"})
    assert "--no-rate-limit" in result.output
    assert "--no-no-rate-limit" not in result.output


def test_an_unknown_command_is_a_usage_error() -> None:
    assert runner.invoke(app, ["nonsense"]).exit_code == 2


def test_inbox_stats_are_a_table(database_url: str) -> None:
    env = {"DATABASE_URL": database_url, "LOG_JSON": "true", "COLUMNS": "120"}
    assert runner.invoke(app, ["events", "stats"], env=env).stdout == "The inbox is empty.\n"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "insert into public.event_inbox (source, body_raw, body_hash, status)"
            " values ('general_webhook', '{}', 'a', 'dead'), ('general_webhook', '{}', 'b', 'done'),"
            " ('general_webhook', '{}', 'c', 'done')"
        )
    result = runner.invoke(app, ["events", "stats"], env=env)
    assert result.exit_code == 0, result.output
    assert "Inbox: 3 event(s)" in result.stdout
    assert "{" not in result.stdout
    rows = {tuple(line.strip("│ ").split()) for line in result.stdout.splitlines()}
    assert {("dead", "│", "1"), ("done", "│", "2")} <= rows


def test_the_embedded_home_is_guesthub_home(tmp_path: Path) -> None:
    assert load_settings(_env_file=None).data_dir == tmp_path / "guesthub-home"


def test_the_embedded_home_does_not_depend_on_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GUESTHUB_HOME")
    monkeypatch.chdir(tmp_path)
    first = load_settings(_env_file=None).data_dir
    monkeypatch.chdir(tmp_path.parent)
    assert first.is_absolute()
    assert load_settings(_env_file=None).data_dir == first
    assert first.name == "guesthub"
