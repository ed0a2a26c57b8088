"""Which database a command talks to: `DATABASE_URL`, else the embedded default."""

from __future__ import annotations

import psycopg

from shared.db.embedded import DEFAULT_DATABASE, database_url, start_embedded
from shared.db.store import PsycopgTransport, Store, SupabaseTransport
from shared.settings import Settings


def resolve_database_url(settings: Settings) -> str:
    """The configured database, or the embedded default (started on demand, database created)."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    server_url = start_embedded(settings.data_dir)
    ensure_database(server_url, DEFAULT_DATABASE)
    return database_url(server_url, DEFAULT_DATABASE)


def ensure_database(server_url: str, name: str) -> None:
    """Create database ``name`` on the server if it does not exist."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
        if exists is None:
            conn.execute(psycopg.sql.SQL("create database {}").format(psycopg.sql.Identifier(name)))


async def open_store(settings: Settings) -> Store:
    """The store for these settings: a direct connection when a database URL is configured (or
    nothing is, then the embedded default), else the Supabase API with the service-role key."""
    if settings.database_url is None and settings.supabase_url:
        if settings.supabase_service_role_key is None:
            raise ValueError("SUPABASE_URL is set but SUPABASE_SERVICE_ROLE_KEY is not")
        key = settings.supabase_service_role_key.get_secret_value()
        return Store(await SupabaseTransport.connect(settings.supabase_url, key))
    return Store(await PsycopgTransport.connect(resolve_database_url(settings)))
