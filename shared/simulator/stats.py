"""What the simulator counts: accepted requests per token, statuses, 429s, messages sent, and
requests that arrived while a 429's ``Retry-After`` was still running for their token."""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from typing import Any

from shared.simulator.tenants import token_label


def max_in_window(times: list[float], window: float) -> int:
    """The most requests that fell inside any sliding window (``times`` ascending)."""
    best = 0
    start = 0
    for end, moment in enumerate(times):
        while moment - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def during_retry_after(
    arrivals: Sequence[float], blocks: Sequence[tuple[float, float]]
) -> list[int]:
    """Per period of ``blocks`` (``(answered, until)`` of each 429; overlapping ones merged, in
    time order), how many of ``arrivals`` (ascending) fell strictly inside it: requests that
    reached the server while a 429's Retry-After was still running."""
    merged: list[tuple[float, float]] = []
    for start, end in sorted(blocks):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return [
        max(0, bisect.bisect_left(arrivals, end) - bisect.bisect_right(arrivals, start))
        for start, end in merged
    ]


class Stats:
    """Accepted requests per token (monotonic times), every request's arrival and every 429's
    Retry-After period per token, statuses, 429s per token, webhooks."""

    def __init__(self) -> None:
        self.accepted: dict[str, list[float]] = {}
        self.limited: dict[str, int] = {}
        self.arrivals: dict[str, list[float]] = {}  # accepted or answered 429
        self.blocks: dict[str, list[tuple[float, float]]] = {}  # (429 answered, Retry-After end)
        self.statuses: dict[int, int] = {}
        self.operations: dict[str, int] = {}
        self.webhooks_sent = 0
        self.webhook_events_sent = 0
        self.integration_webhooks_sent = 0
        self.websocket_messages_sent = 0

    def max_in_window(self, window: float) -> int:
        return max((max_in_window(t, window) for t in self.accepted.values()), default=0)

    def during_retry_after(self, token: str) -> list[int]:
        return during_retry_after(self.arrivals.get(token, []), self.blocks.get(token, []))

    def per_token(self, window: float, names: Mapping[str, str]) -> dict[str, dict[str, Any]]:
        """Per token, named by a hash prefix (never the token) with its property's name."""
        tokens = sorted(set(self.accepted) | set(self.limited), key=token_label)
        return {
            token_label(token): {
                "property": names.get(token),
                "requests": len(self.accepted.get(token, ())),
                "rate_limited": self.limited.get(token, 0),
                "max_in_window": max_in_window(self.accepted.get(token, []), window),
                # the first 429's period apart: what was already on the wire when a token met
                # its first 429 could not be called back
                "during_retry_after": sum(self.during_retry_after(token)),
                "during_first_retry_after": sum(self.during_retry_after(token)[:1]),
            }
            for token in tokens
        }

    def summary(self, window: float, names: Mapping[str, str] | None = None) -> dict[str, Any]:
        return {
            "requests": sum(len(t) for t in self.accepted.values()),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "rate_limited": self.statuses.get(429, 0),
            "max_in_window": self.max_in_window(window),
            "during_retry_after": sum(sum(self.during_retry_after(t)) for t in self.arrivals),
            "during_first_retry_after": sum(
                sum(self.during_retry_after(t)[:1]) for t in self.arrivals
            ),
            "operations": dict(self.operations),
            "webhooks_sent": self.webhooks_sent,
            "webhook_events_sent": self.webhook_events_sent,
            "integration_webhooks_sent": self.integration_webhooks_sent,
            "websocket_messages_sent": self.websocket_messages_sent,
            "per_token": self.per_token(window, names or {}),
        }
