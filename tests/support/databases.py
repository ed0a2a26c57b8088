"""The test database server: `DATABASE_URL` if set, else 127.0.0.1:5432 when it answers, else
an embedded PostgreSQL from the pip package. Each test gets a fresh database cloned from a
template that has every migration applied by the real runner, under Supabase's statement
timeouts (the bootstrap's, shared.db.migrations), with autovacuum off on every table.

`GUESTHUB_TEST_SERVER=embedded` (or `local`) forces a choice, to prove the suite passes each way.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from shared.db.embedded import database_url, start_embedded, stop_embedded
from shared.db.migrations import GLOBAL_STATEMENT_TIMEOUT, migrate

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def _answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


@contextmanager
def test_server() -> Iterator[str]:
    """The URL of a server on which tests may create databases."""
    choice = os.environ.get("GUESTHUB_TEST_SERVER", "auto")
    configured = os.environ.get("DATABASE_URL")
    if choice == "auto" and configured:
        yield configured
    elif choice in ("auto", "local") and _answers(LOCAL_SERVER):
        yield LOCAL_SERVER
    elif choice == "local":
        raise RuntimeError("GUESTHUB_TEST_SERVER=local but nothing answers on 127.0.0.1:5432")
    else:
        with tempfile.TemporaryDirectory(prefix="guesthub-pg-") as data_dir:
            try:
                yield start_embedded(Path(data_dir), keep_running=False)
            finally:
                stop_embedded(Path(data_dir))  # before its folder is removed


def autovacuum_off(url: str) -> None:
    """Autovacuum off on every table (cloned with the template), whatever the server's setting:
    no test depends on when autoanalyze runs; the jobs keep their own statistics current."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "do $$ declare t regclass; begin"
            " for t in select c.oid::regclass from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            "   where c.relkind = 'r' and n.nspname in ('public', 'app', 'auth', 'supabase_migrations') loop"
            "   execute format('alter table %s set (autovacuum_enabled = off)', t);"
            " end loop; end $$"
        )


class DatabaseFactory:
    """Creates fresh databases from a migrated template on one server."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.prefix = f"guesthub_test_{secrets.token_hex(3)}"
        self.template = f"{self.prefix}_tpl"
        self._count = 0

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(self.server_url, autocommit=True)

    def create_template(self) -> None:
        with self._admin() as conn:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(self.template)))
        migrate(self.url_of(self.template))
        autovacuum_off(self.url_of(self.template))

    def url_of(self, name: str) -> str:
        return database_url(self.server_url, name)

    def create_empty(self) -> str:
        return self._create(template="template0")

    def create(self) -> str:
        return self._create(template=self.template)

    def _create(self, template: str) -> str:
        self._count += 1
        name = f"{self.prefix}_{self._count}"
        with self._admin() as conn:
            conn.execute(
                sql.SQL("create database {} template {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
            # a database's settings are not cloned with it: Supabase's global limit, again
            conn.execute(
                sql.SQL("alter database {} set statement_timeout = {}").format(
                    sql.Identifier(name), sql.Literal(GLOBAL_STATEMENT_TIMEOUT)
                )
            )
        return name

    def drop(self, name: str) -> None:
        with self._admin() as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )

    def drop_all(self) -> None:
        with self._admin() as conn:
            names = conn.execute(
                "select datname from pg_database where datname like %s", (self.prefix + "%",)
            ).fetchall()
        for (name,) in names:
            self.drop(name)
