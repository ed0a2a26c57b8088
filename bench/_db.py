"""A fresh, migrated database for a benchmark run, dropped afterwards."""

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
        yield url
    finally:
        if not keep:
            with psycopg.connect(server_url, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
                )
