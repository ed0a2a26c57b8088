"""How the simulator sends its webhooks: JSON POSTs over HTTP/1.1 connections kept open per
receiver (plain ``http``; ``https`` goes through httpx). Mews sends a webhook per change; a
stream of changes across many properties made httpx's per-request machinery most of the
simulator's CPU, which delayed every webhook (and so every measurement of freshness)."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit

import httpx
import orjson

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class WebhookError(Exception):
    """A webhook not delivered: the receiver unreachable, slow, or its answer unreadable."""


class WebhookSender:
    """POSTs JSON; returns the receiver's status. One sender per event loop."""

    def __init__(self, *, timeout: float = 5.0, keep: int = 32) -> None:
        self._timeout = timeout
        self._keep = keep  # idle connections kept per receiver
        self._idle: dict[tuple[str, int], list[Connection]] = {}
        self._https: httpx.AsyncClient | None = None

    async def post(self, url: str, payload: object) -> int:
        body = orjson.dumps(payload)
        parts = urlsplit(url)
        if parts.scheme != "http":
            return await self._post_with_httpx(url, body)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        request = (
            f"POST {target} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        kept = self._take(host, port)
        if kept is not None:
            with contextlib.suppress(WebhookError):  # the receiver closed it: once anew
                return await self._send(host, port, kept, request)
        return await self._send(host, port, None, request)

    async def _send(
        self, host: str, port: int, connection: Connection | None, request: bytes
    ) -> int:
        try:
            async with asyncio.timeout(self._timeout):
                if connection is None:
                    connection = await asyncio.open_connection(host, port)
                status, keep = await _exchange(connection, request)
        except (OSError, EOFError, asyncio.IncompleteReadError, ValueError, TimeoutError) as exc:
            if connection is not None:
                _close(connection)
            raise WebhookError(f"{type(exc).__name__}: {exc}") from exc
        if keep:
            self._give_back(host, port, connection)
        else:
            _close(connection)
        return status

    async def _post_with_httpx(self, url: str, body: bytes) -> int:
        if self._https is None:
            self._https = httpx.AsyncClient(timeout=self._timeout)
        try:
            response = await self._https.post(
                url, content=body, headers={"Content-Type": "application/json"}
            )
        except httpx.HTTPError as exc:
            raise WebhookError(f"{type(exc).__name__}: {exc}") from exc
        return response.status_code

    def _take(self, host: str, port: int) -> Connection | None:
        idle = self._idle.get((host, port))
        while idle:
            connection = idle.pop()
            if not connection[1].is_closing() and not connection[0].at_eof():
                return connection
            _close(connection)
        return None

    def _give_back(self, host: str, port: int, connection: Connection) -> None:
        idle = self._idle.setdefault((host, port), [])
        if len(idle) < self._keep:
            idle.append(connection)
        else:
            _close(connection)

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                _close(connection)
        self._idle.clear()
        if self._https is not None:
            await self._https.aclose()


async def _exchange(connection: Connection, request: bytes) -> tuple[int, bool]:
    """Send ``request``, read the answer; its status and whether the connection stays open."""
    reader, writer = connection
    writer.write(request)
    await writer.drain()
    status_line = await reader.readuntil(b"\r\n")
    version, status, *_ = status_line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while (size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)) > 0:
            await reader.readexactly(size + 2)
        while await reader.readuntil(b"\r\n") != b"\r\n":
            pass
    else:
        await reader.readexactly(int(headers.get("content-length", "0")))
    keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    return int(status), keep


def _close(connection: Connection) -> None:
    with contextlib.suppress(Exception):
        connection[1].close()
