"""Every expected failure of the CLI is one line on stderr (what, where, why, what to do) and a
documented exit code, through the real entry point."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from typer.testing import CliRunner, Result

from shared.cli import app
from shared.cli.errors import CommandError, ExitCode, Failure, explain, pg_reason
from shared.simulator.running import Simulator, running_simulator
from shared.simulator.server import SimulatorConfig
from tests.support.tenancy import seed_tenancy

ROOT = Path(__file__).resolve().parents[2]
GUESTHUB = Path(sys.executable).parent / "guesthub"
runner = CliRunner()


def invoke(*args: str, **env: str) -> Result:
    """``guesthub args`` with JSON logs (to stdout), so stderr holds only what the CLI says."""
    return runner.invoke(app, list(args), env={"LOG_JSON": "true", **env})


def where(url: str) -> str:
    params = conninfo_to_dict(url)
    port = f":{params['port']}" if params.get("port") else ""
    return f"{params.get('host') or 'localhost'}{port}/{params['dbname']}"


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    with running_simulator(SimulatorConfig(customers=20, rate_limit=200)) as sim:
        yield sim


def test_a_database_url_that_is_not_a_url_is_a_configuration_error() -> None:
    result = invoke("sync", "poll", DATABASE_URL="notaurl")
    assert (result.exit_code, result.stderr) == (
        3,
        "error: invalid configuration: DATABASE_URL is not a PostgreSQL connection URL:"
        " expected one like postgresql://USER@HOST:5432/DATABASE\n",
    )


def test_an_unreachable_database_fails_at_once_with_the_reason() -> None:
    # the reason, not "pool initialization incomplete after 30.0 sec": the probe answered
    result = invoke("sync", "poll", DATABASE_URL="postgresql://postgres@127.0.0.1:1/x")
    assert (result.exit_code, result.stderr) == (
        4,
        "error: cannot connect to the database at 127.0.0.1:1/x: connection refused;"
        " check DATABASE_URL and that the server is running\n",
    )


def test_a_password_never_appears_in_the_line() -> None:
    result = invoke("db", "migrate", DATABASE_URL="postgresql://postgres:hunter2@127.0.0.1:1/none")
    assert result.exit_code == 4
    assert "hunter2" not in result.output
    assert result.stderr.startswith("error: cannot connect to the database at 127.0.0.1:1/none")


def test_an_unmigrated_database_says_to_migrate(empty_database_url: str) -> None:
    result = invoke("events", "stats", DATABASE_URL=empty_database_url)
    assert (result.exit_code, result.stderr) == (
        4,
        f"error: the database at {where(empty_database_url)} is not migrated (no API function"
        " public.inbox_stats): run `guesthub db migrate`\n",
    )


def test_debug_adds_the_traceback_before_the_line(empty_database_url: str) -> None:
    result = invoke("--debug", "events", "stats", DATABASE_URL=empty_database_url)
    assert result.exit_code == 4
    assert result.stderr.startswith("Traceback (most recent call last):")
    assert result.stderr.splitlines()[-1].endswith("run `guesthub db migrate`")


def test_an_unreachable_mews_names_its_url(database_url: str) -> None:
    result = invoke(
        "sync",
        "poll",
        "--entity",
        "customers",
        DATABASE_URL=database_url,
        MEWS_PLATFORM_URL="http://127.0.0.1:1",
    )
    assert (result.exit_code, result.stderr) == (
        5,
        "error: cannot reach Mews at http://127.0.0.1:1 (configuration/get): connection refused;"
        " check MEWS_PLATFORM_URL and the network\n",
    )


def test_a_refused_token_names_the_token_variables(database_url: str, simulator: Simulator) -> None:
    result = invoke(
        "sync",
        "poll",
        DATABASE_URL=database_url,
        MEWS_PLATFORM_URL=simulator.url,
        MEWS_ACCESS_TOKEN="bogus-token",
    )
    assert result.exit_code == 5
    assert re.fullmatch(
        rf"error: Mews at {re.escape(simulator.url)} refused the tokens: configuration/get:"
        r" HTTP 401: Invalid ClientToken or AccessToken\. \(RequestId [0-9a-f-]+\);"
        r" check MEWS_ACCESS_TOKEN and MEWS_CLIENT_TOKEN\n",
        result.stderr,
    ), result.stderr
    assert "bogus-token" not in result.output


def test_a_report_of_an_empty_database_says_so_and_writes_nothing(
    database_url: str, tmp_path: Path
) -> None:
    target = tmp_path / "report.html"
    result = invoke("report", "--html", str(target), DATABASE_URL=database_url)
    assert (result.exit_code, result.stderr) == (
        1,
        f"error: nothing to report: the database at {where(database_url)} has no enterprises"
        " yet; load them with `guesthub sync backfill`, then run `guesthub score`\n",
    )
    assert not target.exists()


def test_a_report_of_an_unknown_enterprise_names_the_known_ones(
    database_url: str, tmp_path: Path
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        seed_tenancy(conn)
    target = tmp_path / "report.html"
    unknown = "00000000-0000-4000-8000-000000000000"
    result = invoke(
        "report", "--html", str(target), "--enterprise", unknown, DATABASE_URL=database_url
    )
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: no enterprise {unknown} in the database at ")
    assert "(Alpha Prague)" in result.stderr
    assert "(Beta Lisbon)" in result.stderr
    assert not target.exists()


def test_scoring_an_empty_database_says_there_is_nothing_to_score(database_url: str) -> None:
    result = invoke("score", DATABASE_URL=database_url)
    assert result.exit_code == 0, result.output
    assert " ".join(result.stderr.split()) == (
        f"no enterprises to score in the database at {where(database_url)}: load them first"
        " with `guesthub sync backfill`"
    )
    with psycopg.connect(database_url) as conn:
        assert conn.execute("select count(*) from public.sync_runs").fetchone() == (0,)


def _without_google_credentials(home: Path) -> dict[str, str]:
    """An environment where Application Default Credentials find nothing, offline."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "CLOUDSDK_CONFIG": str(home / "gcloud"),
        "NO_GCE_CHECK": "true",  # no metadata server to ask
        "GUESTHUB_HOME": str(home / "guesthub"),
        "LOG_JSON": "true",
    }


def test_a_scheduler_dry_run_without_credentials_prints_the_plan(tmp_path: Path) -> None:
    result = subprocess.run(  # noqa: S603 - our own executables
        [str(GUESTHUB), "scheduler", "apply", "--project", "p", "--region", "r", "--dry-run"],
        cwd=ROOT,
        env=_without_google_credentials(tmp_path),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        "no Google credentials: listing every job without comparing with the project's"
        " (`gcloud auth application-default login` to compare)\n"
    )
    lines = result.stdout.splitlines()
    assert lines
    for line in lines:
        assert re.fullmatch(
            r"would create or update projects/p/locations/r/jobs/guesthub-[a-z-]+: .+ \(.+\)"
            r" → https://r-p\.cloudfunctions\.net/[a-z_]+",
            line,
        ), line


def test_applying_without_credentials_says_how_to_get_them(tmp_path: Path) -> None:
    result = subprocess.run(  # noqa: S603 - our own executables
        [str(GUESTHUB), "scheduler", "apply", "--project", "p", "--region", "r"],
        cwd=ROOT,
        env=_without_google_credentials(tmp_path),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (result.returncode, result.stderr) == (
        3,
        "error: no Google credentials (Application Default Credentials not found): run `gcloud"
        " auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS\n",
    )


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (
            'connection failed: connection to server at "127.0.0.1", port 1 failed: Connection'
            " refused\n\tIs the server running on that host and accepting TCP/IP connections?",
            "connection refused",
        ),
        (
            'connection failed: connection to server at "127.0.0.1", port 5432 failed: FATAL: '
            ' database "nosuch" does not exist',
            'database "nosuch" does not exist',
        ),
        (
            "failed to resolve host 'db.invalid': [Errno -2] Name or service not known",
            "failed to resolve host 'db.invalid': [Errno -2] Name or service not known",
        ),
    ],
)
def test_libpq_messages_come_down_to_their_reason(message: str, reason: str) -> None:
    assert pg_reason(message) == reason


def test_the_first_error_of_a_group_explains_it() -> None:
    group = ExceptionGroup("units", [CommandError("nothing to do", ExitCode.FAILURE)])
    assert explain(group) == Failure("nothing to do", ExitCode.FAILURE)


def test_an_unexpected_error_is_one_line_that_points_to_debug() -> None:
    assert explain(ZeroDivisionError("division by zero")) == Failure(
        "unexpected ZeroDivisionError: division by zero (rerun with --debug for the traceback)",
        ExitCode.FAILURE,
    )
