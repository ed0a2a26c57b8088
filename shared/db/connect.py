"""Which database a command talks to: `DATABASE_URL`, else the embedded default.

A database that refuses or does not answer fails in seconds: every URL handed out carries a
connect timeout, and :func:`open_store` connects once before opening a pool (a pool retries
for 30 s, then reports "pool initialization incomplete" instead of the reason).
"""

from __future__ import annotations

import psycopg
from psycopg.conninfo import conninfo_to_dict

from shared.db.embedded import DEFAULT_DATABASE, database_url, start_embedded
from shared.db.store import PsycopgTransport, Store, StoreError, SupabaseTransport
from shared.settings import Settings, SettingsError

CONNECT_TIMEOUT_SECONDS = 5
NOT_A_URL = (
    "DATABASE_URL is not a PostgreSQL connection URL: expected one like"
    " postgresql://USER@HOST:5432/DATABASE"
)


def resolve_database_url(settings: Settings) -> str:
    """The configured database, or the embedded default (started on demand, database created).

    Raises :class:`SettingsError` when ``DATABASE_URL`` is not a connection URL."""
    if settings.database_url is not None:
        return with_connect_timeout(settings.database_url.get_secret_value())
    server_url = start_embedded(settings.data_dir)
    ensure_database(server_url, DEFAULT_DATABASE)
    return database_url(server_url, DEFAULT_DATABASE)


def with_connect_timeout(url: str, seconds: int = CONNECT_TIMEOUT_SECONDS) -> str:
    """``url`` with a ``connect_timeout`` (unless it has one), in the form it came in."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        raise SettingsError(NOT_A_URL) from None  # its message would quote the URL
    if "connect_timeout" in params:
        return url
    if "://" not in url:
        return f"{url} connect_timeout={seconds}"
    return f"{url}{'&' if '?' in url else '?'}connect_timeout={seconds}"


def describe_database(settings: Settings) -> str:
    """Where the store is, for messages: host, port and database, never a password."""
    if settings.database_url is None:
        if settings.supabase_url:
            return f"Supabase at {settings.supabase_url}"
        return f"the embedded database {DEFAULT_DATABASE} in {settings.data_dir}"
    try:
        params = conninfo_to_dict(settings.database_url.get_secret_value())
    except psycopg.ProgrammingError:
        return "the database of DATABASE_URL"
    host = str(params.get("host") or "localhost")
    port = f":{params['port']}" if params.get("port") else ""
    return f"the database at {host}{port}/{params.get('dbname') or params.get('user') or ''}"


def ensure_database(server_url: str, name: str) -> None:
    """Create database ``name`` on the server if it does not exist."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
        if exists is None:
            conn.execute(psycopg.sql.SQL("create database {}").format(psycopg.sql.Identifier(name)))


async def probe(url: str) -> None:
    """Connect once: the database's own reason (refused, no such database, bad password) as a
    :class:`StoreError` from ``connect`` within the connect timeout."""
    try:
        conn = await psycopg.AsyncConnection.connect(url)
    except psycopg.Error as exc:
        raise StoreError("connect", exc.sqlstate, str(exc)) from exc
    await conn.close()


async def open_store(settings: Settings) -> Store:
    """The store for these settings: a direct connection when a database URL is configured (or
    nothing is, then the embedded default), else the Supabase API with the service-role key.

    Raises :class:`SettingsError` for an incoherent configuration and :class:`StoreError`
    (``connect``) when the database cannot be reached."""
    if settings.database_url is None and settings.supabase_url:
        if settings.supabase_service_role_key is None:
            raise SettingsError("SUPABASE_URL is set but SUPABASE_SERVICE_ROLE_KEY is not")
        key = settings.supabase_service_role_key.get_secret_value()
        return Store(await SupabaseTransport.connect(settings.supabase_url, key))
    url = resolve_database_url(settings)
    await probe(url)
    return Store(
        await PsycopgTransport.connect(
            url,
            statement_timeout_seconds=settings.database_statement_timeout_seconds,
            reconnect_seconds=settings.database_reconnect_seconds,
        )
    )
