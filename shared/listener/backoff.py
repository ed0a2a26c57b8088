"""Reconnect delays: exponential, capped, with jitter (pure).

Full jitter by default (a delay anywhere in ``[0, d]``); ``floor`` keeps a share of ``d`` as a
minimum, for waits that must never be short (a refused token is not retried within seconds).
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class Backoff:
    base: float = 1.0
    cap: float = 60.0
    attempt: int = 0
    floor: float = 0.0  # the shortest delay, as a share of the current step (0..1)

    def next_delay(self, rng: random.Random) -> float:
        step = min(self.cap, self.base * 2**self.attempt)
        if step < self.cap:  # once capped, stop counting: 2**1024 would overflow a float
            self.attempt += 1
        return rng.uniform(self.floor * step, step)

    def reset(self) -> None:
        self.attempt = 0
