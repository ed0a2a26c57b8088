"""The migration runner against a real, empty PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from shared.db.migrations import (
    GLOBAL_STATEMENT_TIMEOUT,
    ROLE_STATEMENT_TIMEOUTS,
    MigrationError,
    MigrationsMissingError,
    discover,
    migrate,
    status,
    table_names_without_rls,
)
from shared.db.store import Store, StoreError, SupabaseTransport
from shared.netserve import serve_in_thread
from tests.support import postgrest_double
from tests.support.tenancy import as_role


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


def test_a_missing_or_empty_migrations_folder_is_an_error_naming_it(
    tmp_path: Path, empty_database_url: str
) -> None:
    # an install that left its migrations behind must not look up to date ("0 pending")
    missing = tmp_path / "migrations"
    with pytest.raises(MigrationsMissingError, match=f"no migrations folder at {missing}"):
        discover(missing)
    missing.mkdir()
    (missing / "README.md").write_text("not a migration")
    with pytest.raises(MigrationsMissingError, match=f"no migration files .* in {missing}"):
        discover(missing)
    with psycopg.connect(empty_database_url) as conn, pytest.raises(MigrationsMissingError):
        status(conn, missing)


def role_settings(conn: psycopg.Connection) -> dict[str, str]:
    rows = conn.execute(
        "select r.rolname, split_part(c, '=', 2) from pg_db_role_setting s"
        " join pg_roles r on r.oid = s.setrole cross join unnest(s.setconfig) c"
        " where s.setdatabase = 0 and split_part(c, '=', 1) = 'statement_timeout'"
    ).fetchall()
    return dict(rows)


def test_the_bootstrap_sets_supabase_statement_timeouts(empty_database_url: str) -> None:
    migrate(empty_database_url)
    with psycopg.connect(empty_database_url) as conn:
        roles = role_settings(conn)
        database = conn.execute("show statement_timeout").fetchone()
    assert {role: roles.get(role) for role in ROLE_STATEMENT_TIMEOUTS} == {
        "anon": "3s",
        "authenticated": "8s",
        "authenticator": "8s",
    }
    assert "service_role" not in roles  # it keeps authenticator's, through the REST API
    assert database == (GLOBAL_STATEMENT_TIMEOUT,)


@pytest.mark.parametrize(
    ("role", "timeout"), [("anon", "3s"), ("authenticated", "8s"), ("service_role", "8s")]
)
def test_a_request_as_an_api_role_runs_under_its_timeout(
    database_url: str, role: str, timeout: str
) -> None:
    with psycopg.connect(database_url) as conn, as_role(conn, role):
        assert conn.execute("show statement_timeout").fetchone() == (timeout,)


@pytest.mark.anyio
async def test_the_postgrest_double_applies_each_roles_timeout(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "create function public.timeout_probe() returns jsonb language sql set search_path = ''"
            " as $$ select to_jsonb(current_setting('statement_timeout')) $$;"
            " grant execute on function public.timeout_probe() to anon, authenticated, service_role;"
            " create function public.sleep_probe(p_seconds float) returns jsonb language sql"
            " set search_path = '' as $$ select pg_sleep(p_seconds); select '{}'::jsonb $$;"
            " grant execute on function public.sleep_probe(float) to anon"
        )
    seen = {}
    with serve_in_thread(postgrest_double.create_app(database_url)) as server:
        for role in ("anon", "authenticated", "service_role"):
            store = Store(
                await SupabaseTransport.connect(server.http_url, postgrest_double.make_jwt(role))
            )
            try:
                seen[role] = await store.call("timeout_probe")
                if role == "anon":
                    with pytest.raises(StoreError) as cancelled:
                        await store.call("sleep_probe", p_seconds=3.5)
            finally:
                await store.aclose()
    assert seen == {"anon": "3s", "authenticated": "8s", "service_role": "8s"}
    assert cancelled.value.code == "57014"
