"""The per-AccessToken request budget, shared through Postgres by every process.

Mews counts requests per AccessToken in a sliding window (200 per 30 s). Counting in memory
would let each function instance spend the whole budget; here each request first takes a slot
from ``public.rate_limit_acquire`` (the database serialises callers per key).

Mews may limit a token below ``MEWS_RATE_LIMIT``, the ceiling. A 429 (``public.rate_limit_refused``)
blocks the token for every process until its Retry-After has passed; after it, one request goes
alone (a *probe*: it waits until nothing else of the token is on the wire, and the others wait
for its answer), so a limit that still holds meets one request, not every waiting call. A 429
lowers the token's limit (to 90 % of what the window accepted), and requests at or above it go
alone, as probes; each quiet window after which the limit holds a request back raises it by 5 %
of the ceiling, up to the ceiling, where the token is trusted again.
While a token is adapted, each of its slots carries a ticket, handed back with the answer
(:meth:`PostgresRateLimiter.answered`) or the 429 (:meth:`PostgresRateLimiter.pause`), so the
database knows what is on the wire.

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
from dataclasses import dataclass
from typing import Protocol

from shared.db.store import Store
from shared.mews.errors import MewsAuthError


@dataclass(frozen=True)
class Slot:
    """A granted request. With a ``ticket``, the limiter wants to hear how it was answered."""

    probe: bool = False  # it goes alone: nothing else of the token is on the wire
    ticket: int | None = None


class RateLimiter(Protocol):
    async def acquire(self) -> Slot:
        """Wait for a slot of the token's budget."""
        ...

    async def answered(self, slot: Slot) -> None:
        """``slot``'s request got an answer that is not a 429 (only slots with a ticket)."""
        ...

    async def pause(self, seconds: float, slot: Slot | None = None) -> None:
        """A 429 (for ``slot``'s request): nobody sends on the token for ``seconds``."""
        ...

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
        self.limit = budget(limit, safety_margin)  # the ceiling; the token's limit may be lower
        self._window_ms = max(1, round((window_seconds + guard_seconds) * 1000))
        self._sleep = sleep
        self.waited_seconds = 0.0

    async def acquire(self) -> Slot:
        while True:
            answer = await self._store.call(
                "rate_limit_acquire",
                p_key=self._key,
                p_limit=self.limit,
                p_window_ms=self._window_ms,
            )
            if answer["granted"]:
                return Slot(probe=bool(answer.get("probe")), ticket=answer.get("ticket"))
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

    async def answered(self, slot: Slot) -> None:
        await self._store.call("rate_limit_answered", p_key=self._key, p_ticket=slot.ticket)

    async def pause(self, seconds: float, slot: Slot | None = None) -> None:
        await self._store.call(
            "rate_limit_refused",
            p_key=self._key,
            p_seconds=seconds,
            p_limit=self.limit,
            p_window_ms=self._window_ms,
            p_ticket=slot.ticket if slot else None,
        )

    async def mark_unauthorized(self, error: str) -> None:
        await self._store.call("token_unauthorized", p_key=self._key, p_error=error)


class UnlimitedRateLimiter:
    """No budget (the simulator with its limit lifted, to measure our own overhead)."""

    async def acquire(self) -> Slot:
        return Slot()

    async def answered(self, slot: Slot) -> None:
        return None

    async def pause(self, seconds: float, slot: Slot | None = None) -> None:
        await asyncio.sleep(seconds)

    async def mark_unauthorized(self, error: str) -> None:
        return None
