"""The sync and simulator commands as people run them."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from shared.cli import app
from shared.simulator.running import running_simulator
from shared.simulator.server import SimulatorConfig


def test_backfill_then_poll_from_the_command_line(database_url: str) -> None:
    with running_simulator(SimulatorConfig(customers=250, rate_limit=200)) as sim:
        env = {"DATABASE_URL": database_url, "MEWS_PLATFORM_URL": sim.url}
        runner = CliRunner()
        backfill = runner.invoke(app, ["sync", "backfill", "--entity", "customers"], env=env)
        assert backfill.exit_code == 0, backfill.output
        assert "customers: 250 fetched, 250 new" in backfill.output
        assert "429s: 0" in backfill.output
        poll = runner.invoke(app, ["sync", "poll", "--entity", "customers"], env=env)
        assert poll.exit_code == 0, poll.output
        assert "poll_changes: succeeded" in poll.output
        bad = runner.invoke(app, ["sync", "poll", "--entity", "bookings"], env=env)
        assert bad.exit_code != 0
        changed = runner.invoke(
            app, ["simulator", "mutate", "--url", sim.url, "--customers-updated", "3"]
        )
        assert changed.exit_code == 0, changed.output
        assert '"customers_updated": 3' in changed.output
    with psycopg.connect(database_url) as conn:
        assert conn.execute("select count(*) from public.guests").fetchone() == (250,)


def test_documents_asked_for_before_their_guests_say_what_to_load_first(
    database_url: str,
) -> None:
    with running_simulator(SimulatorConfig(customers=50, rate_limit=200)) as sim:
        env = {"DATABASE_URL": database_url, "MEWS_PLATFORM_URL": sim.url}
        early = ["sync", "backfill", "--entity", "identity_documents"]
        result = CliRunner().invoke(app, early, env=env)
        assert result.exit_code == 0, result.output
        said = " ".join(result.output.split())  # the console wraps long lines
        assert "identity_documents: not loaded yet" in said
        assert "guesthub sync backfill --entity customers" in said
        both = ["sync", "backfill", "--entity", "customers", "--entity", "identity_documents"]
        result = CliRunner().invoke(app, both, env=env)
        assert result.exit_code == 0, result.output
        assert "not loaded yet" not in result.output
    with psycopg.connect(database_url) as conn:
        assert conn.execute(
            "select count(*) > 0 from public.guest_identity_documents"
        ).fetchone() == (True,)


@pytest.mark.parametrize("command", ["backfill", "poll", "reconcile"])
def test_an_unknown_entity_is_a_usage_error_before_anything_runs(
    command: str, guesthub_home: Path
) -> None:
    """`--entity` names the entities it takes; an unknown one exits 2 without opening a
    database (not even the embedded one) or asking Mews."""
    result = CliRunner().invoke(app, ["sync", command, "--entity", "bookings"])
    assert result.exit_code == 2, result.output
    assert "unknown entity 'bookings'" in result.output
    assert "identity_documents" in result.output
    assert not guesthub_home.exists()
