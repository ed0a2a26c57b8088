"""The store: one interface to the database API (SQL functions), two transports.

``Store.call("fn", p_x=...)`` runs ``public.fn`` and returns its jsonb result as Python data.

- :class:`PsycopgTransport` — a direct connection (``DATABASE_URL``: local, embedded, tests, or
  Supabase's direct connection), acting as ``service_role`` like the API does.
- :class:`SupabaseTransport` — the Supabase client's ``rpc`` (PostgREST), with the service-role
  key.

Both raise :class:`StoreError` with the SQLSTATE, so code above the transport never sees a
driver's exception. A lost connection is not a refusal: the psycopg transport reopens it and
repeats the call when that is safe (:mod:`shared.db.reconnect`), else (or when it cannot be
reopened in time) raises :class:`ConnectionLostError`, which names the database.
"""

from __future__ import annotations

import asyncio
import select
import time
import warnings
from collections.abc import Mapping
from typing import Any, Protocol
from uuid import UUID

import httpx
import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool

from shared.db.reconnect import (
    GIVEN_UP_SECONDS,
    RECONNECT_SECONDS,
    connection_lost,
    reason,
    reopening,
    safe_to_repeat,
)
from shared.db.rpc import FUNCTION_QUERY, UnknownFunctionError, build_call, check_name
from shared.db.session import SessionLock
from shared.logs import redact_text


class StoreError(RuntimeError):
    """The database refused a call; ``code`` is the SQLSTATE (or PostgREST's code)."""

    def __init__(self, fn: str, code: str | None, message: str) -> None:
        super().__init__(f"{fn}: {redact_text(message)}" + (f" [{code}]" if code else ""))
        self.fn = fn
        self.code = code


class ConnectionLostError(StoreError):
    """The connection to the database (``where``: host, port and name, never a password) was
    lost during ``fn`` and the call could not be completed: either no connection could be
    reopened in time, or the call was under way and is not safe to repeat (it may or may not
    have been applied). Its text (recorded in runs, which staff may read) does not name the
    host; the command line's message does."""

    def __init__(self, fn: str, code: str | None, reason: str, *, where: str) -> None:
        super().__init__(fn, code, f"connection to the database lost: {reason}")
        self.where = where
        self.reason = redact_text(reason)


class _LostError(Exception):
    """The connection went away during one attempt; ``sent``: the call had been sent."""

    def __init__(self, cause: psycopg.Error, *, sent: bool) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.sent = sent


class Transport(Protocol):
    async def call(self, fn: str, args: Mapping[str, Any]) -> Any: ...

    async def session(self) -> UUID | None: ...

    async def aclose(self) -> None: ...


async def check_idle_connection(conn: psycopg.AsyncConnection[Any]) -> None:
    """The pool's check of a connection before it is handed out, without a round trip while
    the connection is quiet: a server that ends a connection (a restart, a terminated backend)
    says so on its socket (an error message, then the end of the stream), which makes the idle
    socket readable; only then (or when the connection is known to be broken) is the full check
    (an empty query) run, which raises for a dead one. A round trip before every call doubled
    the database round trips of every job."""
    if conn.closed or conn.broken or _readable(conn):
        await AsyncConnectionPool.check_connection(conn)


def _readable(conn: psycopg.AsyncConnection[Any]) -> bool:
    """Whether an idle connection's socket has something to read (or cannot be asked)."""
    try:
        if hasattr(select, "poll"):  # no limit on the descriptor's number, unlike select()
            poller = select.poll()
            poller.register(conn.fileno(), select.POLLIN)
            return bool(poller.poll(0))
        ready, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError, psycopg.Error):
        return True
    return bool(ready)


class PsycopgTransport:
    """Calls API functions over a psycopg connection pool, as ``service_role``."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        role: str | None = "service_role",
        reconnect_seconds: float = RECONNECT_SECONDS,
    ) -> None:
        self._pool = pool
        self._role = role
        self._reconnect_seconds = reconnect_seconds
        conninfo = pool.conninfo
        self._conninfo = conninfo if isinstance(conninfo, str) else ""
        self._read_only: dict[str, bool] = {}
        self._given_up = False
        self._signatures: dict[str, dict[str, str]] = {}
        self._session: SessionLock | None = None

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        role: str | None = "service_role",
        max_size: int = 8,
        statement_timeout_seconds: float | None = None,
        reconnect_seconds: float = RECONNECT_SECONDS,
    ) -> PsycopgTransport:
        """A pool on ``url``; every call runs as ``role`` and, when given, under a statement
        timeout (what Supabase's API roles have; a direct connection has none of its own). A
        lost connection is tried again for ``reconnect_seconds``."""

        async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
            await conn.set_autocommit(True)
            if role is not None:
                await conn.execute(
                    psycopg.sql.SQL("set role {}").format(psycopg.sql.Identifier(role))
                )
            if statement_timeout_seconds is not None:
                milliseconds = max(1, round(statement_timeout_seconds * 1000))
                await conn.execute(f"set statement_timeout = {milliseconds}")

        pool = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            configure=configure,
            # a connection the server dropped (a restart) is replaced before it is handed out,
            # instead of failing the call that gets it
            check=check_idle_connection,
            open=False,
            kwargs={"application_name": "guesthub"},
        )
        try:
            await pool.open(wait=True, timeout=30)
        except psycopg.Error as exc:
            await pool.close()
            raise StoreError("connect", exc.sqlstate, str(exc)) from exc
        return cls(pool, role=role, reconnect_seconds=reconnect_seconds)

    @property
    def pool(self) -> AsyncConnectionPool:
        return self._pool

    async def call(self, fn: str, args: Mapping[str, Any]) -> Any:
        """Run ``fn``. A lost connection is reopened (the pool replaces it) and the call tried
        again with a capped backoff for ``reconnect_seconds``, unless it had been sent and is
        not safe to repeat: then, or when time is up, :class:`ConnectionLostError`."""
        budget = GIVEN_UP_SECONDS if self._given_up else self._reconnect_seconds
        deadline = time.monotonic() + budget
        attempt = 0
        while True:
            try:
                result = await self._call_once(fn, args, deadline)
            except _LostError as lost:
                if lost.sent and not safe_to_repeat(fn, read_only=self._read_only.get(fn, False)):
                    raise await self._lost(
                        fn,
                        lost,
                        "it was under way and is not repeated: it may or may not have been applied",
                    ) from lost.cause
                left = deadline - time.monotonic()
                if left <= 0:
                    self._given_up = True
                    raise await self._lost(
                        fn, lost, f"not reopened within {self._reconnect_seconds:g} s"
                    ) from lost.cause
                attempt += 1
                reopening(fn, attempt, lost.cause)
                await asyncio.sleep(min(0.05 * 2**attempt, 1.0, left))
            else:
                self._given_up = False
                return result

    async def _call_once(self, fn: str, args: Mapping[str, Any], deadline: float) -> Any:
        sent = False
        try:
            wait = max(deadline - time.monotonic(), 0.1)
            async with self._pool.connection(timeout=wait) as conn:
                signature = await self._signature(conn, fn)
                statement, params = build_call(fn, signature, args)
                sent = True
                cursor = await conn.execute(statement, params)
                row = await cursor.fetchone()
        except psycopg.Error as exc:
            if connection_lost(exc):
                raise _LostError(exc, sent=sent) from exc
            raise StoreError(fn, exc.sqlstate, exc.diag.message_primary or str(exc)) from exc
        except UnknownFunctionError as exc:
            raise StoreError(fn, "PGRST202", str(exc)) from exc
        return None if row is None else row[0]

    async def _lost(self, fn: str, lost: _LostError, outcome: str) -> ConnectionLostError:
        """The error for a call given up: the database named, the driver's reason, and when no
        connection could be had, the reason a new one is refused (the pool only says it
        timed out)."""
        why = reason(lost.cause)
        if not lost.sent:
            why = await self._connect_reason() or why
        return ConnectionLostError(fn, lost.cause.sqlstate, f"{why}; {outcome}", where=self.where)

    async def _connect_reason(self) -> str | None:
        try:
            conn = await psycopg.AsyncConnection.connect(self._conninfo)
        except psycopg.Error as exc:
            return reason(exc)
        await conn.close()
        return None

    @property
    def where(self) -> str:
        """The database, for messages: host, port and name (never a password)."""
        try:
            params = conninfo_to_dict(self._conninfo)
        except psycopg.Error:
            return "the database"
        port = f":{params['port']}" if params.get("port") else ""
        name = params.get("dbname") or ""
        return f"the database at {params.get('host') or 'localhost'}{port}/{name}"

    async def _signature(self, conn: psycopg.AsyncConnection[Any], fn: str) -> dict[str, str]:
        if fn not in self._signatures:
            cursor = await conn.execute(FUNCTION_QUERY, (check_name(fn),))
            rows = await cursor.fetchall()
            if not rows:
                raise UnknownFunctionError(f"no API function public.{fn}")
            self._read_only[fn] = all(can_not_write for _, _, can_not_write in rows)
            self._signatures[fn] = {name: kind for name, kind, _ in rows if name is not None}
        return self._signatures[fn]

    async def session(self) -> UUID:
        """The process's session lock (:mod:`shared.db.session`), held; its id."""
        if self._session is None:
            conninfo = self._pool.conninfo if isinstance(self._pool.conninfo, str) else ""
            kwargs = self._pool.kwargs if isinstance(self._pool.kwargs, dict) else {}
            self._session = SessionLock(conninfo, self._role, dict(kwargs))
        try:
            return await self._session.hold()
        except psycopg.Error as exc:
            raise StoreError("session_hold", exc.sqlstate, str(exc)) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.aclose()
        await self._pool.close()


class SupabaseTransport:
    """Calls API functions through the Supabase client (PostgREST ``/rest/v1/rpc/<fn>``)."""

    def __init__(self, client: Any, http: httpx.AsyncClient) -> None:
        self._client = client
        self._http = http

    @classmethod
    async def connect(
        cls, url: str, service_role_key: str, *, http_timeout: float = 60.0
    ) -> SupabaseTransport:
        from supabase import AsyncClientOptions, acreate_client

        http = httpx.AsyncClient(timeout=http_timeout)
        options = AsyncClientOptions(
            auto_refresh_token=False, persist_session=False, httpx_client=http
        )
        client = await acreate_client(url, service_role_key, options=options)
        with warnings.catch_warnings():
            # supabase passes postgrest arguments that postgrest itself deprecates
            warnings.filterwarnings(
                "ignore", r"The '(timeout|verify|proxy)' parameter", DeprecationWarning
            )
            _ = client.postgrest
        return cls(client, http)

    async def call(self, fn: str, args: Mapping[str, Any]) -> Any:
        from postgrest.exceptions import APIError

        try:
            response = await self._client.rpc(check_name(fn), dict(args)).execute()
        except APIError as exc:
            raise StoreError(fn, exc.code, exc.message or str(exc)) from exc
        except UnknownFunctionError as exc:
            raise StoreError(fn, "PGRST202", str(exc)) from exc
        except httpx.HTTPError as exc:
            raise StoreError(fn, None, f"Supabase unreachable: {type(exc).__name__}") from exc
        return response.data

    async def session(self) -> None:
        """No session over REST: this process's runs are known dead by their heartbeat and
        their leases' expiry only."""

    async def aclose(self) -> None:
        await self._http.aclose()


class Store:
    """The database API, whatever the transport."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    async def call(self, fn: str, /, **args: Any) -> Any:
        return await self.transport.call(fn, args)

    async def session(self) -> UUID | None:
        """The id of this process's session lock (:mod:`shared.db.session`), held while the
        store is open; None over the Supabase API, which has no session."""
        return await self.transport.session()

    async def aclose(self) -> None:
        await self.transport.aclose()
