"""The sync and simulator commands as people run them."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from shared.cli import app
from shared.mews.windows import MAX_WINDOW, format_utc
from shared.simulator.data import parse
from shared.simulator.running import running_simulator
from shared.simulator.server import SimulatorConfig
from shared.sync.connect import INTERACTIVE_RETRY


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


def test_a_window_that_keeps_failing_is_named_exits_6_and_the_next_backfill_finishes_it(
    database_url: str,
) -> None:
    """Mews answers 500 to every attempt at one first-load window: the other windows load,
    the command names the window and its error and exits 6 (work left); run again, it
    finishes (exit 0) and every customer is there."""
    with running_simulator(SimulatorConfig(customers=250, rate_limit=200)) as sim:
        created = sorted(parse(c["CreatedUtc"]) for c in sim.data.customers.values())
        start = parse(sim.data.enterprises[0]["CreatedUtc"])  # windows are chained from here
        while start + MAX_WINDOW <= created[len(created) // 2]:
            start += MAX_WINDOW  # to the window of the median customer
        inside = {
            i
            for i, c in sim.data.customers.items()
            if start <= parse(c["CreatedUtc"]) < start + MAX_WINDOW
        }
        assert inside
        matching = f'"StartUtc":"{format_utc(start)}"'
        attempts = INTERACTIVE_RETRY.max_attempts
        target = {"operation": "customers/getAll", "matching": matching, "times": attempts}
        sim.set_faults(targeted=[target])
        env = {"DATABASE_URL": database_url, "MEWS_PLATFORM_URL": sim.url}
        command = ["sync", "backfill", "--entity", "customers"]
        first = CliRunner().invoke(app, command, env=env)
        said = " ".join(first.output.split())
        assert first.exit_code == 6, first.output
        assert f"left for the next run: customers first-load window {format_utc(start)}.." in said
        assert "MewsServerError: customers/getAll: HTTP 500" in said
        assert "run the command again to carry on" in said
        with psycopg.connect(database_url) as conn:
            stored = {str(r[0]) for r in conn.execute("select mews_id from public.guests")}
        assert stored == set(sim.data.customers) - inside
        second = CliRunner().invoke(app, command, env=env)
        assert second.exit_code == 0, second.output
        assert f"customers: {len(inside)} fetched" in second.output
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
