"""What the simulator counts: accepted requests per token, statuses, 429s, messages sent."""

from __future__ import annotations

from collections.abc import Mapping
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


class Stats:
    """Accepted requests per token (monotonic times), statuses, 429s per token, webhooks."""

    def __init__(self) -> None:
        self.accepted: dict[str, list[float]] = {}
        self.limited: dict[str, int] = {}
        self.statuses: dict[int, int] = {}
        self.operations: dict[str, int] = {}
        self.webhooks_sent = 0
        self.webhook_events_sent = 0
        self.integration_webhooks_sent = 0
        self.websocket_messages_sent = 0

    def max_in_window(self, window: float) -> int:
        return max((max_in_window(t, window) for t in self.accepted.values()), default=0)

    def per_token(self, window: float, names: Mapping[str, str]) -> dict[str, dict[str, Any]]:
        """Per token, named by a hash prefix (never the token) with its property's name."""
        tokens = sorted(set(self.accepted) | set(self.limited), key=token_label)
        return {
            token_label(token): {
                "property": names.get(token),
                "requests": len(self.accepted.get(token, ())),
                "rate_limited": self.limited.get(token, 0),
                "max_in_window": max_in_window(self.accepted.get(token, []), window),
            }
            for token in tokens
        }

    def summary(self, window: float, names: Mapping[str, str] | None = None) -> dict[str, Any]:
        return {
            "requests": sum(len(t) for t in self.accepted.values()),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "rate_limited": self.statuses.get(429, 0),
            "max_in_window": self.max_in_window(window),
            "operations": dict(self.operations),
            "webhooks_sent": self.webhooks_sent,
            "webhook_events_sent": self.webhook_events_sent,
            "integration_webhooks_sent": self.integration_webhooks_sent,
            "websocket_messages_sent": self.websocket_messages_sent,
            "per_token": self.per_token(window, names or {}),
        }
