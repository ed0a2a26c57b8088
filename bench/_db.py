"""A fresh, migrated database for a benchmark run, dropped afterwards.

Autovacuum is off for every table of a bench database (``autovacuum_enabled = off``, whatever the
server's setting), as it may be anywhere: a figure must not depend on when autoanalyze ran, and
every job leaves the statistics of what it wrote current itself."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

from shared.db.embedded import database_url
from shared.db.migrations import migrate

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextmanager
def fresh_database(server_url: str = LOCAL_SERVER, *, keep: bool = False) -> Iterator[str]:
    """Create ``bench_<random>`` on the server, apply every migration, yield its URL."""
    name = f"guesthub_bench_{secrets.token_hex(3)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = database_url(server_url, name)
    try:
        migrate(url)
        autovacuum_off(url)
        yield url
    finally:
        if not keep:
            with psycopg.connect(server_url, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
                )


def autovacuum_off(url: str) -> None:
    """``autovacuum_enabled = off`` (and for their TOAST tables) on every table of the database."""
    with psycopg.connect(url, autocommit=True) as conn:
        tables = conn.execute(
            "select format('%I.%I', n.nspname, c.relname) from pg_class c"
            " join pg_namespace n on n.oid = c.relnamespace"
            " where c.relkind = 'r' and n.nspname not in ('pg_catalog', 'information_schema')"
            " and n.nspname not like 'pg_toast%'"
        ).fetchall()
        for (table,) in tables:
            conn.execute(
                sql.SQL(
                    "alter table {} set (autovacuum_enabled = off, toast.autovacuum_enabled = off)"
                ).format(sql.SQL(table))
            )
