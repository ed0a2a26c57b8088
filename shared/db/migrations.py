"""The migration runner: applies `supabase/migrations/*.sql` in order, each in a transaction.

Applied versions are recorded in `supabase_migrations.schema_migrations`, the table the
Supabase CLI uses, so this runner and `supabase db push` agree on what has run. On a plain
Postgres (no `auth` schema from Supabase) the bootstrap that creates what Supabase provides is
applied first, with the statement timeouts a Supabase project sets (:data:`ROLE_STATEMENT_TIMEOUTS`,
:data:`GLOBAL_STATEMENT_TIMEOUT`). The runner stops at the first failing file and names it with
the database's error; a file that applied stays applied (each file is its own transaction).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from shared.db.paths import bootstrap_file, migrations_dir
from shared.package_data import PackageDataError

_FILE_NAME = re.compile(r"^(?P<version>\d{14})_(?P<name>[a-z0-9_]+)\.sql$")
# one runner at a time per database
_ADVISORY_LOCK = 7_264_011_240

# Supabase's statement timeouts on its API roles. PostgREST logs in as `authenticator` and applies
# the impersonated role's own setting per request; `service_role` has none, so it keeps the
# 8 s of `authenticator`. The one place these values live: tests and the PostgREST test double
# read them back from the catalogue (pg_db_role_setting), as PostgREST does.
ROLE_STATEMENT_TIMEOUTS: dict[str, str] = {
    "anon": "3s",
    "authenticated": "8s",
    "authenticator": "8s",
}
# Supabase's limit for every other session (a direct connection included).
GLOBAL_STATEMENT_TIMEOUT = "2min"

_HISTORY_DDL = """
create schema if not exists supabase_migrations;
create table if not exists supabase_migrations.schema_migrations (
  version text primary key,
  statements text[],
  name text
);
"""


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: str
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


class MigrationError(RuntimeError):
    """A migration failed; earlier ones stay applied, later ones did not run."""

    def __init__(self, migration: Migration, cause: str) -> None:
        super().__init__(f"migration {migration.path.name} failed: {cause}")
        self.migration = migration


class MigrationsMissingError(PackageDataError):
    """The migrations folder is absent or holds no migration: an install without its data."""


def discover(directory: Path | None = None) -> list[Migration]:
    """Migration files in version order; a badly named `.sql` file is an error, not skipped, and
    so is a missing or empty folder (never "nothing pending")."""
    folder = directory or migrations_dir()
    if not folder.is_dir():
        raise MigrationsMissingError(f"no migrations folder at {folder}")
    found = []
    for path in sorted(folder.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise ValueError(f"{path.name}: migration files are named <YYYYMMDDHHMMSS>_<what>.sql")
        found.append(Migration(match["version"], match["name"], path))
    if not found:
        raise MigrationsMissingError(f"no migration files (*.sql) in {folder}")
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError("two migration files share a version")
    return found


def is_supabase(conn: psycopg.Connection) -> bool:
    """True on a Supabase database (its auth schema is there before any bootstrap of ours)."""
    row = conn.execute(
        "select exists (select from pg_roles where rolname = 'supabase_admin')"
    ).fetchone()
    return bool(row and row[0])


def applied_versions(conn: psycopg.Connection) -> set[str]:
    row = conn.execute("select to_regclass('supabase_migrations.schema_migrations')").fetchone()
    if row is None or row[0] is None:
        return set()
    return {v for (v,) in conn.execute("select version from supabase_migrations.schema_migrations")}


@dataclass(frozen=True)
class MigrationStatus:
    applied: list[Migration]
    pending: list[Migration]
    bootstrap_needed: bool


def status(conn: psycopg.Connection, directory: Path | None = None) -> MigrationStatus:
    done = applied_versions(conn)
    files = discover(directory)
    return MigrationStatus(
        applied=[m for m in files if m.version in done],
        pending=[m for m in files if m.version not in done],
        bootstrap_needed=not is_supabase(conn),
    )


def migrate(url: str, directory: Path | None = None) -> list[Migration]:
    """Apply the bootstrap (plain Postgres only) and every pending migration; return those run."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(%s)", (_ADVISORY_LOCK,))
        try:
            if not is_supabase(conn):
                _apply_bootstrap(conn)
            conn.execute(_HISTORY_DDL)
            pending = status(conn, directory).pending
            for migration in pending:
                _apply(conn, migration)
            return pending
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (_ADVISORY_LOCK,))


def _apply_bootstrap(conn: psycopg.Connection) -> None:
    with conn.transaction():
        # roles are cluster-wide; two databases bootstrapping at once must not race on them
        conn.execute("select pg_advisory_xact_lock(%s)", (_ADVISORY_LOCK + 1,))
        conn.execute(bootstrap_file().read_text(encoding="utf-8"))
        set_statement_timeouts(conn)


def set_statement_timeouts(conn: psycopg.Connection) -> None:
    """Supabase's statement timeouts: per API role (cluster-wide, like the roles) and for this
    database (a database cloned from this one as a template does not inherit it: call again).
    A role's setting is written only when it differs: a database bootstrapped while another is
    would otherwise update the same catalogue row at once ("tuple concurrently updated")."""
    current: dict[str, list[str] | None] = dict(
        conn.execute(
            "select r.rolname, s.setconfig from pg_db_role_setting s"
            " join pg_roles r on r.oid = s.setrole where s.setdatabase = 0"
        ).fetchall()
    )
    for role, timeout in ROLE_STATEMENT_TIMEOUTS.items():
        if f"statement_timeout={timeout}" in (current.get(role) or []):
            continue
        conn.execute(
            sql.SQL("alter role {} set statement_timeout = {}").format(
                sql.Identifier(role), sql.Literal(timeout)
            )
        )
    conn.execute(
        sql.SQL(
            "do $$ begin execute format('alter database %I set statement_timeout = %L',"
            " current_database(), {}); end $$"
        ).format(sql.Literal(GLOBAL_STATEMENT_TIMEOUT))
    )


def _apply(conn: psycopg.Connection, migration: Migration) -> None:
    sql = migration.sql
    try:
        with conn.transaction():
            conn.execute(sql)
            conn.execute(
                "insert into supabase_migrations.schema_migrations (version, statements, name)"
                " values (%s, %s, %s)",
                (migration.version, [sql], migration.name),
            )
    except psycopg.Error as exc:
        detail = exc.diag.message_primary or str(exc)
        position = (
            f" (line {_line_of(sql, exc.diag.statement_position)})"
            if exc.diag.statement_position
            else ""
        )
        raise MigrationError(migration, f"{detail}{position}") from exc


def _line_of(sql: str, position: str | None) -> int:
    offset = int(position or "1") - 1
    return sql.count("\n", 0, max(offset, 0)) + 1


def table_names_without_rls(
    conn: psycopg.Connection, schemas: Sequence[str] = ("public",)
) -> list[str]:
    """Tables in the exposed schemas that do not have row-level security enabled."""
    rows = conn.execute(
        "select n.nspname || '.' || c.relname from pg_class c"
        " join pg_namespace n on n.oid = c.relnamespace"
        " where c.relkind in ('r', 'p') and n.nspname = any(%s) and not c.relrowsecurity"
        " order by 1",
        (list(schemas),),
    ).fetchall()
    return [name for (name,) in rows]
