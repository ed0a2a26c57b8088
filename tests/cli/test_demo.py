"""`guesthub demo` shows changes and a staff edit going through the real-time service with no job
run by hand, leaves its data where the next command looks, says how to explore it and how to stop
the embedded server, and never recreates a database it did not make."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from shared.db.embedded import DEFAULT_DATABASE, database_url, start_embedded

GUESTHUB = Path(sys.executable).parent / "guesthub"


def guesthub(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The console script in a folder of its own, with nothing configured but its home."""
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env |= {"GUESTHUB_HOME": str(home), "HOME": str(home.parent), "LOG_LEVEL": "WARNING"}
    env |= {"COLUMNS": "200"}
    return subprocess.run(  # noqa: S603 - our own executables
        [str(GUESTHUB), *args],
        cwd=home.parent,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    try:
        yield home
    finally:
        guesthub(home, "db", "stop")


def test_the_demo_leaves_its_data_for_the_next_command(home: Path) -> None:
    demo = guesthub(home, "demo", "--customers", "60", "--latency-ms", "0")
    assert demo.returncode == 0, demo.stderr
    for command in ("guesthub events stats", "guesthub report --html", "guesthub db stop"):
        assert command in demo.stdout
    # the changes and the staff edit went through the real-time service, no job run by hand
    assert "all in the mirror" in demo.stdout
    assert "one guest changed in Mews: in guests" in demo.stdout
    assert "a receptionist added a missing phone in Supabase: in Mews" in demo.stdout
    with psycopg.connect(database_url(start_embedded(home), DEFAULT_DATABASE)) as conn:
        jobs = dict(conn.execute("select job, count(*) from public.sync_runs group by job"))
    assert jobs.keys() >= {"backfill", "realtime", "score_profiles"}
    assert not jobs.keys() & {"process_events", "push_changes"}
    stats = guesthub(home, "events", "stats")
    assert stats.returncode == 0, stats.stderr
    assert "Inbox:" in stats.stdout
    report = guesthub(home, "report", "--html", str(home / "again.html"))
    assert report.returncode == 0, report.stderr
    assert (home / "again.html").exists()


def test_the_demo_refuses_to_recreate_a_database_it_did_not_make(home: Path) -> None:
    migrated = guesthub(home, "db", "migrate")
    assert migrated.returncode == 0, migrated.stderr
    url = database_url(start_embedded(home), DEFAULT_DATABASE)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "insert into public.sync_runs (job, status) values ('poll_changes', 'running')"
        )
    demo = guesthub(home, "demo", "--customers", "60", "--latency-ms", "0")
    assert demo.returncode == 1
    assert demo.stderr.splitlines()[-1] == (
        f"error: the embedded database {DEFAULT_DATABASE} in {home} holds data the demo did not"
        " make, and the demo recreates it: set GUESTHUB_HOME to another folder (or DATABASE_URL"
        " to an empty database)"
    )
    with psycopg.connect(url) as conn:
        assert conn.execute("select count(*) from public.sync_runs").fetchone() == (1,)
