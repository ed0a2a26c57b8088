"""The per-AccessToken request budget, shared through Postgres by every process.

Mews counts requests per AccessToken in a sliding window (200 per 30 s). Counting in memory
would let each function instance spend the whole budget; here each request first takes a slot
from ``public.rate_limit_acquire`` (the database serialises callers per key) and a 429 pauses
the key for every process through ``public.rate_limit_pause``.

The budget is ``limit × (1 − safety_margin)`` per ``window + guard``: a slot is taken in the
database a few milliseconds before Mews counts the request, and two requests need not take the
same time to arrive, so a window exactly as long as Mews' would sometimes put one request too
many in Mews' window. The guard (0.5 s by default) absorbs that.

A 401 marks the token unauthorized for everyone (:meth:`PostgresRateLimiter.mark_unauthorized`):
from then on no slot is granted for it and :meth:`~PostgresRateLimiter.acquire` raises
:class:`~shared.mews.errors.MewsAuthError` without calling Mews, until the token changes.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import Awaitable, Callable
from typing import Protocol

from shared.db.store import Store
from shared.mews.errors import MewsAuthError


class RateLimiter(Protocol):
    async def acquire(self) -> None: ...

    async def pause(self, seconds: float) -> None: ...

    async def mark_unauthorized(self, error: str) -> None: ...


def budget(limit: int, safety_margin: float) -> int:
    """Requests we allow ourselves per window."""
    return max(1, math.floor(limit * (1 - safety_margin)))


def token_key(access_token: str) -> str:
    """The key a token's budget is stored under: a hash, never the token."""
    return "mews:" + hashlib.sha256(access_token.encode()).hexdigest()


class PostgresRateLimiter:
    """A slot per request from the shared budget in Postgres; waits when there is none."""

    def __init__(
        self,
        store: Store,
        access_token: str,
        *,
        limit: int = 200,
        window_seconds: float = 30.0,
        safety_margin: float = 0.05,
        guard_seconds: float = 0.5,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._store = store
        self._key = token_key(access_token)
        self.limit = budget(limit, safety_margin)
        self._window_ms = max(1, round((window_seconds + guard_seconds) * 1000))
        self._sleep = sleep
        self.waited_seconds = 0.0

    async def acquire(self) -> None:
        while True:
            answer = await self._store.call(
                "rate_limit_acquire",
                p_key=self._key,
                p_limit=self.limit,
                p_window_ms=self._window_ms,
            )
            if answer["granted"]:
                return
            if answer.get("unauthorized"):
                refused = answer["unauthorized"]
                raise MewsAuthError(
                    f"Mews refused this AccessToken (401) since {refused['since']}: "
                    f"{refused.get('error') or 'unauthorized'}; its jobs are paused until the token"
                    " changes (check MEWS_ACCESS_TOKEN or the connection)",
                    operation="(not sent)",
                    status=401,
                )
            wait = answer["wait_ms"] / 1000
            self.waited_seconds += wait
            await self._sleep(wait)

    async def pause(self, seconds: float) -> None:
        await self._store.call("rate_limit_pause", p_key=self._key, p_seconds=seconds)

    async def mark_unauthorized(self, error: str) -> None:
        await self._store.call("token_unauthorized", p_key=self._key, p_error=error)


class UnlimitedRateLimiter:
    """No budget (the simulator with its limit lifted, to measure our own overhead)."""

    async def acquire(self) -> None:
        return None

    async def pause(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def mark_unauthorized(self, error: str) -> None:
        return None
