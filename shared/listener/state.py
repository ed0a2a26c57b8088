"""What one socket's health says (pure: counters and clocks, no I/O).

A socket's ``status``:

- ``connected``: the socket is open and frames are being stored;
- ``degraded``: the socket is open but storing fails (the database is away); frames wait in the
  buffer;
- ``unauthorized``: Mews refused the upgrade with 401 or 403 (the token is revoked, or the
  integration may not use WebSockets); retried rarely;
- ``disconnected``: anything else while the socket is not open (reconnecting with backoff).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ListenerState:
    connected: bool = False
    connects: int = 0
    frames: int = 0
    catch_ups: int = 0
    catch_up_failures: int = 0
    last_error: str | None = None
    last_frame_at: float | None = None
    disconnected_since: float | None = field(default_factory=time.monotonic)
    # refused with 401/403 at the upgrade: since when, without a connect in between
    unauthorized_since: float | None = None
    refusals: int = 0
    # the database side: frames received but not yet stored, and whether storing works
    buffered: int = 0
    stored: int = 0
    store_ok: bool = True
    store_errors: int = 0
    overflows: int = 0

    @property
    def unauthorized(self) -> bool:
        return self.unauthorized_since is not None

    @property
    def status(self) -> str:
        if self.connected:
            return "connected" if self.store_ok else "degraded"
        return "unauthorized" if self.unauthorized else "disconnected"

    def disconnected_seconds(self, now: float) -> float | None:
        """How long the socket has been down (None while it is open)."""
        if self.connected or self.disconnected_since is None:
            return None
        return max(0.0, now - self.disconnected_since)

    def healthy(self, max_disconnected_seconds: float, now: float | None = None) -> bool:
        """False when the socket has been down longer than allowed, unless Mews refused its
        token: a revoked token is the property's matter, which no restart of ours can fix."""
        if self.unauthorized:
            return True
        down = self.disconnected_seconds(time.monotonic() if now is None else now)
        return down is None or down < max_disconnected_seconds

    def snapshot(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "connected": self.connected,
            "connects": self.connects,
            "frames": self.frames,
            "stored": self.stored,
            "buffered": self.buffered,
            "store_ok": self.store_ok,
            "store_errors": self.store_errors,
            "overflows": self.overflows,
            "catch_ups": self.catch_ups,
            "catch_up_failures": self.catch_up_failures,
            "refusals": self.refusals,
            "last_error": self.last_error,
        }
