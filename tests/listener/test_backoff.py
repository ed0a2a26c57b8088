"""Reconnect delays."""

from __future__ import annotations

import random

from shared.listener.backoff import Backoff


def test_backoff_is_capped_and_jittered() -> None:
    backoff = Backoff(base=1, cap=8)
    rng = random.Random(3)
    delays = [backoff.next_delay(rng) for _ in range(10)]
    assert all(0 <= d <= 8 for d in delays)
    assert len(set(delays)) == 10
    backoff.reset()
    assert backoff.next_delay(rng) <= 1


def test_a_floor_keeps_every_delay_at_least_its_share_of_the_step() -> None:
    backoff = Backoff(base=600, cap=3600, floor=0.5)
    rng = random.Random(5)
    delays = [backoff.next_delay(rng) for _ in range(6)]
    steps = [600, 1200, 2400, 3600, 3600, 3600]
    assert all(step / 2 <= d <= step for d, step in zip(delays, steps, strict=True))


def test_a_socket_down_for_days_still_gets_a_delay() -> None:
    """Once capped, the attempt count stops growing (2**1024 does not fit in a float)."""
    backoff = Backoff(base=1, cap=60)
    rng = random.Random(1)
    delays = [backoff.next_delay(rng) for _ in range(5000)]
    assert max(delays) <= 60
    assert backoff.attempt == 6  # 2**6 = 64 > 60: capped from there on
