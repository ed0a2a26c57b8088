"""`guesthub connections` through the real CLI: add a token by hand (from standard input, stored
encrypted, never printed), list, health (exit 6 when Mews refuses a token), disable, enable."""

from __future__ import annotations

import json
import re

import psycopg
from cryptography.fernet import Fernet
from typer.testing import CliRunner, Result

from shared.cli import app
from shared.mews.ratelimit import token_key
from shared.simulator.running import running_simulator
from shared.simulator.server import SimulatorConfig

runner = CliRunner()
TOKEN = "ABCDEF0123456789ABCDEF0123456789-ABCDEF0123456789ABCDEF012345678"
KEY = Fernet.generate_key().decode()


def invoke(database_url: str, *args: str, stdin: str | None = None, **env: str) -> Result:
    return runner.invoke(
        app,
        ["connections", *args],
        input=stdin,
        env={
            "DATABASE_URL": database_url,
            "TOKEN_ENCRYPTION_KEY": KEY,
            "MEWS_ACCESS_TOKEN": "",
            "LOG_JSON": "true",
            **env,
        },
    )


def test_add_list_disable_enable_without_ever_showing_the_token(database_url: str) -> None:
    added = invoke(database_url, "add", "--name", "Hotel Two", stdin=TOKEN + "\n")
    assert added.exit_code == 0, added.output
    assert re.search(r"connection [0-9a-f-]{36} added \(active\)", added.output)
    again = invoke(database_url, "add", stdin=TOKEN + "\n")
    assert "already known" in again.output
    listed = invoke(database_url, "list", "--json")
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.stdout)
    assert (row["name"], row["source"], row["status"]) == ("Hotel Two", "manual", "active")
    disabled = invoke(database_url, "disable", "Hotel Two")
    assert disabled.exit_code == 0, disabled.output
    assert json.loads(invoke(database_url, "list", "--json").stdout)[0]["status"] == "disabled"
    assert invoke(database_url, "enable", row["integration_id"][:8]).exit_code == 0
    assert json.loads(invoke(database_url, "list", "--json").stdout)[0]["status"] == "active"
    with psycopg.connect(database_url) as conn:
        (stored,) = conn.execute("select access_token_encrypted from public.connections").fetchone()  # type: ignore[misc]
    assert Fernet(KEY.encode()).decrypt(stored.encode()).decode() == TOKEN
    for result in (added, again, listed, disabled):
        assert TOKEN not in result.output
        assert TOKEN[:32] not in result.output


def test_add_refuses_without_a_key_or_a_token(database_url: str) -> None:
    no_key = invoke(database_url, "add", stdin=TOKEN + "\n", TOKEN_ENCRYPTION_KEY="")
    assert no_key.exit_code == 3
    assert "TOKEN_ENCRYPTION_KEY is not set" in no_key.output
    empty = invoke(database_url, "add", stdin="\n")
    assert empty.exit_code == 2
    assert "no AccessToken" in empty.output
    unknown = invoke(database_url, "disable", "no-such-hotel")
    assert unknown.exit_code == 2
    assert "no connection 'no-such-hotel'" in unknown.output


def test_health_names_a_refused_token_and_exits_6(database_url: str) -> None:
    with running_simulator(SimulatorConfig(customers=20)) as sim:
        env = {"MEWS_PLATFORM_URL": sim.url}
        assert (
            invoke(
                database_url, "add", "--name", "Good", stdin=sim.properties[0].access_token
            ).exit_code
            == 0
        )
        assert invoke(database_url, "add", "--name", "Refused", stdin=TOKEN).exit_code == 0
        poll = runner.invoke(
            app,
            ["sync", "poll", "--entity", "resources"],
            env={
                "DATABASE_URL": database_url,
                "TOKEN_ENCRYPTION_KEY": KEY,
                "MEWS_ACCESS_TOKEN": "",
                **env,
            },
        )
        assert poll.exit_code == 1, poll.output  # one connection failed, the other was served
        assert "poll_changes · Good: succeeded" in poll.output
        assert "refused" in poll.output.lower()
    health = invoke(database_url, "health", "--json")
    assert health.exit_code == 6, health.output
    by_name = {h["name"]: h for h in json.loads(health.stdout[: health.stdout.rindex("]") + 1])}
    assert by_name["Refused"]["status"] == "unauthorized"
    assert by_name["Refused"]["unauthorized"] == 1
    assert by_name["Good"]["status"] == "active"
    assert by_name["Good"]["last_poll_at"] is not None
    table = invoke(database_url, "health")
    assert "Refused: unauthorized" in table.output
    assert token_key(TOKEN) not in table.output + health.output


def test_backfill_loads_every_connection_and_exits_1_naming_a_refused_one(
    database_url: str,
) -> None:
    """`sync backfill` runs on the job runner: the good connection is loaded (one run for it),
    the refused one costs only itself, is named, and is no longer active afterwards."""
    env = {"DATABASE_URL": database_url, "TOKEN_ENCRYPTION_KEY": KEY, "MEWS_ACCESS_TOKEN": ""}
    with running_simulator(SimulatorConfig(customers=20)) as sim:
        env["MEWS_PLATFORM_URL"] = sim.url
        good = sim.properties[0].access_token
        assert invoke(database_url, "add", "--name", "Good", stdin=good).exit_code == 0
        assert invoke(database_url, "add", "--name", "Refused", stdin=TOKEN).exit_code == 0
        both = runner.invoke(app, ["sync", "backfill", "--entity", "customers"], env=env)
        assert both.exit_code == 1, both.output
        assert "customers: 20 fetched, 20 new" in both.output
        assert "Refused:" in both.output
        alone = runner.invoke(
            app, ["sync", "backfill", "--entity", "customers", "--connection", "Refused"], env=env
        )
        assert alone.exit_code == 2, alone.output
        assert "no active connection 'Refused'" in alone.output
    with psycopg.connect(database_url) as conn:
        runs = conn.execute(
            "select status, count(*), count(distinct connection_id) from public.sync_runs"
            " where job = 'backfill' group by status order by status"
        ).fetchall()
    assert runs == [("failed", 1, 1), ("succeeded", 1, 1)]
