"""The process's session lock: how other processes know this one is alive.

A process that works on a direct connection holds a session-level advisory lock
(``public.session_hold``) on a connection of its own, kept open as long as the process works;
its runs record that session (``public.run_session``). PostgreSQL drops the lock the moment the
connection ends — the process was killed, or its host vanished (this connection's TCP
keepalives end the server's session within about ``KEEPALIVE_IDLE + KEEPALIVE_INTERVAL *
KEEPALIVE_COUNT`` seconds) — so another process that finds the lock free knows this one's runs
are dead and takes their work over at once, instead of waiting for a heartbeat to go stale or a
lease to expire.

The Supabase API (PostgREST ``rpc``) has no session: a process on it holds no lock, and its runs
are found dead by their heartbeat and their leases' expiry, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import psycopg
from psycopg import sql

from shared.logs import get_logger

log = get_logger(__name__)

# the server's keepalives on this connection: a vanished host's session ends within ~25 s
KEEPALIVE_IDLE = 10
KEEPALIVE_INTERVAL = 5
KEEPALIVE_COUNT = 3


class SessionLock:
    """The session lock of one process (one store), taken on first use, re-taken when its
    connection was lost (a database restart), released by :meth:`aclose` or by dying."""

    def __init__(self, conninfo: str, role: str | None, kwargs: dict[str, Any]) -> None:
        self.id = uuid.uuid4()
        self._conninfo = conninfo
        self._role = role
        self._kwargs = kwargs
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._guard = asyncio.Lock()

    async def hold(self) -> uuid.UUID:
        """The session id, its lock held (taken again if the connection was lost)."""
        async with self._guard:
            if self._conn is not None and not self._conn.closed and await _answers(self._conn):
                return self.id
            await self._drop()
            self._conn = await self._connect()
            await self._conn.execute("select public.session_hold(p_session => %s)", (self.id,))
            return self.id

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        conn = await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True, **self._kwargs
        )
        if self._role is not None:
            await conn.execute(sql.SQL("set role {}").format(sql.Identifier(self._role)))
        for name, value in (
            ("tcp_keepalives_idle", KEEPALIVE_IDLE),
            ("tcp_keepalives_interval", KEEPALIVE_INTERVAL),
            ("tcp_keepalives_count", KEEPALIVE_COUNT),
        ):
            await conn.execute(sql.SQL("set {} = {}").format(sql.Identifier(name), value))
        return conn

    async def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):  # already gone
                await self._conn.close()
            self._conn = None

    async def aclose(self) -> None:
        async with self._guard:
            await self._drop()


async def _answers(conn: psycopg.AsyncConnection[Any]) -> bool:
    try:
        await conn.execute("select 1")
    except psycopg.Error:
        log.warning("the session lock's connection was lost; taking the lock again")
        return False
    return True
