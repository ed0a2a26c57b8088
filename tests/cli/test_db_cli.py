"""`guesthub db migrate` and `guesthub db status` on a real database."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from shared.cli import app
from shared.db.migrations import discover

runner = CliRunner()


@pytest.fixture
def env(empty_database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DATABASE_URL", empty_database_url)
    monkeypatch.setenv("LOG_JSON", "true")
    return empty_database_url


def test_migrate_twice_applies_everything_then_nothing(env: str) -> None:
    first = runner.invoke(app, ["db", "migrate"])
    second = runner.invoke(app, ["db", "migrate"])
    assert first.exit_code == 0, first.output
    assert first.output.count("applied ") == len(discover())
    assert second.exit_code == 0
    assert "Nothing to apply" in second.output


def test_status_lists_pending_then_applied(env: str) -> None:
    before = runner.invoke(app, ["db", "status"])
    runner.invoke(app, ["db", "migrate"])
    after = runner.invoke(app, ["db", "status"])
    assert f"0 applied, {len(discover())} pending" in before.output
    assert after.exit_code == 0
    assert f"{len(discover())} applied, 0 pending" in after.output


def test_a_failing_migration_exits_non_zero_without_leaking_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres:hunter2@127.0.0.1:1/none")
    result = runner.invoke(app, ["db", "migrate"])
    assert result.exit_code != 0
    assert "hunter2" not in result.output
    assert "connection" in result.output.lower()
