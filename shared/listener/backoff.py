"""Reconnect delays: exponential, capped, with full jitter (pure)."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class Backoff:
    base: float = 1.0
    cap: float = 60.0
    attempt: int = 0

    def next_delay(self, rng: random.Random) -> float:
        delay = rng.uniform(0, min(self.cap, self.base * 2**self.attempt))
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0
