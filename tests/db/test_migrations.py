"""The migration runner against a real, empty PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from shared.db.migrations import (
    MigrationError,
    discover,
    migrate,
    status,
    table_names_without_rls,
)


def test_first_run_applies_every_file_and_second_run_applies_nothing(
    empty_database_url: str,
) -> None:
    first = migrate(empty_database_url)
    second = migrate(empty_database_url)
    assert [m.version for m in first] == [m.version for m in discover()]
    assert second == []


def test_history_table_lists_every_migration_file(empty_database_url: str) -> None:
    migrate(empty_database_url)
    with psycopg.connect(empty_database_url) as conn:
        rows = conn.execute(
            "select version, name from supabase_migrations.schema_migrations order by version"
        ).fetchall()
    assert rows == [(m.version, m.name) for m in discover()]


def test_every_table_in_the_exposed_schema_has_rls_enabled(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        assert table_names_without_rls(conn, ["public"]) == []


def test_status_reports_nothing_pending_after_migrate(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        report = status(conn)
    assert report.pending == []
    assert len(report.applied) == len(discover())


def _copy_with(tmp_path: Path, extra: dict[str, str]) -> Path:
    for migration in discover():
        (tmp_path / migration.path.name).write_text(migration.sql)
    for name, text in extra.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_runner_stops_at_a_bad_file_naming_it_and_the_database_error(
    empty_database_url: str, tmp_path: Path
) -> None:
    directory = _copy_with(
        tmp_path,
        {
            "29990101000000_broken.sql": (
                "create table public.ok_before (id int);\nselect nonsense from nowhere;"
            ),
            "29990101000001_after.sql": "create table public.never_created (id int);",
        },
    )
    with pytest.raises(MigrationError) as raised:
        migrate(empty_database_url, directory)
    assert "29990101000000_broken.sql" in str(raised.value)
    assert 'relation "nowhere" does not exist' in str(raised.value)
    with psycopg.connect(empty_database_url) as conn:
        versions = {
            v for (v,) in conn.execute("select version from supabase_migrations.schema_migrations")
        }
        broken_table = conn.execute("select to_regclass('public.ok_before')").fetchone()
        later_table = conn.execute("select to_regclass('public.never_created')").fetchone()
    assert "29990101000000" not in versions
    assert broken_table == (None,)  # the failing file rolled back whole
    assert later_table == (None,)  # and nothing after it ran


def test_a_badly_named_migration_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "create_guests.sql").write_text("select 1;")
    with pytest.raises(ValueError, match="YYYYMMDDHHMMSS"):
        discover(tmp_path)
