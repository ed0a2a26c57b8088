"""What a simulator serves and how it behaves: its data sizes, properties, limits and webhooks."""

from __future__ import annotations

from dataclasses import dataclass

from shared.settings import DEMO_ACCESS_TOKEN, DEMO_CLIENT_TOKEN

FIXTURE_CLIENT_TOKEN = "0FA4E0C11E470000000000000000C0DE-000000000000000000000000000C11E"  # noqa: S105
FIXTURE_ACCESS_TOKEN = "0FA4EACCE5500000000000000000C0DE-000000000000000000000000000ACCE"  # noqa: S105
DEMO_NET_ACCESS_TOKEN = "4D6C7ABE0E6A4681B0AFB16900AE5D86-DF50CBC89E1D4FF5859DDF021649ED5"  # noqa: S105


@dataclass
class SimulatorConfig:
    """``customers`` is per property (the portfolio's chain gets as many). Property 0 is the
    data of ``seed`` with ``enterprises`` enterprises, served by every token of
    ``access_tokens``; properties 1..``properties``-1 are one-enterprise chains with their own
    derived seed and token; ``portfolio_enterprises`` > 0 adds one chain of that many
    enterprises served by one portfolio token."""

    seed: int = 7
    customers: int = 200
    enterprises: int = 1
    history_days: int = 730  # how old the enterprises are: a first load's windows reach back so far
    properties: int = 1
    portfolio_enterprises: int = 0
    latency_ms: float = 0.0
    per_item_ms: float = 0.0
    rate_limit: int | None = 200  # None: no limit
    rate_window_seconds: float = 30.0
    client_tokens: tuple[str, ...] = (DEMO_CLIENT_TOKEN, FIXTURE_CLIENT_TOKEN)
    access_tokens: tuple[str, ...] = (
        DEMO_ACCESS_TOKEN,
        DEMO_NET_ACCESS_TOKEN,
        FIXTURE_ACCESS_TOKEN,
    )
    webhook_url: str | None = None  # carries the secret: ...?Token=...
    webhook_delay_seconds: float = 0.0
    webhook_batch_size: int = 100
    webhook_duplicates: bool = False  # send some events twice, and messages out of order
    duplicates: float = 0.0  # share of people planted twice, as many look-alikes (the truth kept)
