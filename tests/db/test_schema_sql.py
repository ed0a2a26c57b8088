"""supabase/schema.sql is the schema a fresh database has after every migration: a reader opens
one file; a migration added without `make schema` fails here with the command to run."""

from __future__ import annotations

import difflib

import psycopg
import pytest

from deploy.schema_sql import COMMAND, TARGET, render
from shared.db.migrations import discover, migrate


def test_schema_sql_is_the_migrated_schema(empty_database_url: str) -> None:
    migrate(empty_database_url)
    with psycopg.connect(empty_database_url) as conn:
        current = render(conn)
    written = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
    if written != current:
        diff = difflib.unified_diff(
            written.splitlines(), current.splitlines(), "supabase/schema.sql", "migrated", n=1
        )
        shown = "\n".join(list(diff)[:60])
        pytest.fail(f"supabase/schema.sql is stale: run `{COMMAND}`\n{shown}")


def test_the_schema_names_every_migration_and_object(empty_database_url: str) -> None:
    migrate(empty_database_url)
    with psycopg.connect(empty_database_url) as conn:
        current = render(conn)
        functions = conn.execute(
            "select count(*) from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
            " where n.nspname in ('app', 'public')"
        ).fetchone()
        tables = [
            t
            for (t,) in conn.execute(
                "select c.oid::regclass::text from pg_class c"
                " join pg_namespace n on n.oid = c.relnamespace"
                " where n.nspname = 'public' and c.relkind = 'r'"
            )
        ]
    last = discover()[-1]
    assert f"{len(discover())} migrations applied; the last: {last.path.name}" in current
    assert functions is not None
    assert current.count("CREATE OR REPLACE FUNCTION") == functions[0]
    for table in tables:
        assert f"create table public.{table} (" in current, table
        assert f"alter table public.{table} enable row level security;" in current, table
