"""Supabase Realtime: the tables a frontend watches are in the `supabase_realtime` publication
(created by the plain-Postgres bootstrap as Supabase has it), and each is covered by row-level
security, so a subscriber receives the changes of its hotels' rows only (what each stream
carries is checked per screen by tests/quality/test_frontend_contract.py); nothing holding a
secret or an internal is published."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg

from shared.db.migrations import migrate
from shared.db.paths import migrations_dir

WATCHED = {
    "guests",
    "guest_scores",
    "guest_score_history",
    "conflict_log",
    "sync_runs",
    "quarantine",
}
PUBLICATION = "20261206070200_realtime_publication.sql"
NEVER = {"connections", "event_inbox", "rate_limit_state", "memberships", "app_users"}


def published(conn: psycopg.Connection) -> set[str]:
    return {
        f"{schema}.{table}"
        for schema, table in conn.execute(
            "select schemaname, tablename from pg_publication_tables"
            " where pubname = 'supabase_realtime'"
        )
    }


def test_the_watched_tables_are_published_and_nothing_else(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        assert published(conn) == {f"public.{t}" for t in WATCHED}
        assert not published(conn) & {f"public.{t}" for t in NEVER}


def test_every_published_table_is_read_under_row_level_security(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        for name in sorted(published(conn)):
            schema, table = name.split(".")
            row = conn.execute(
                "select c.relrowsecurity,"
                " has_table_privilege('anon', c.oid, 'select'),"
                " has_table_privilege('authenticated', c.oid, 'select'),"
                " exists (select from pg_policies p where p.schemaname = n.nspname"
                "   and p.tablename = c.relname and p.cmd in ('SELECT', 'ALL')"
                "   and p.roles && array['authenticated', 'public']::name[])"
                " from pg_class c join pg_namespace n on n.oid = c.relnamespace"
                " where n.nspname = %s and c.relname = %s",
                (schema, table),
            ).fetchone()
            assert row is not None, name
            rls, anon_reads, staff_read, policy = row
            assert rls, f"{name}: row-level security"
            assert not anon_reads, f"{name}: anon reads nothing"
            assert staff_read, f"{name}: a frontend (authenticated) may read it"
            assert policy, f"{name}: a policy says which rows authenticated reads"


def test_migrating_again_keeps_the_publication_as_it_is(database_url: str) -> None:
    migrate(database_url)  # the bootstrap again (plain Postgres): the publication exists
    with psycopg.connect(database_url) as conn:
        assert published(conn) == {f"public.{t}" for t in WATCHED}


def test_a_table_already_published_is_left_alone(empty_database_url: str, tmp_path: Path) -> None:
    """A Supabase project whose dashboard already published `guests`: the migration adds the
    others and does not fail on it."""
    for migration in sorted(migrations_dir().glob("*.sql")):
        if migration.name < PUBLICATION:
            shutil.copy(migration, tmp_path / migration.name)
    migrate(empty_database_url, tmp_path)
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        assert published(conn) == set()  # the bootstrap created it empty, as Supabase does
        conn.execute("alter publication supabase_realtime add table public.guests")
    migrate(empty_database_url)
    with psycopg.connect(empty_database_url) as conn:
        assert published(conn) == {f"public.{t}" for t in WATCHED}
