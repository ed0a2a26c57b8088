"""The properties a simulator serves, each answered only from its own data.

A :class:`Tenant` is what one connection covers: an independent property (one chain, its
enterprise, its customers) or the portfolio (one chain of several enterprises behind one
portfolio AccessToken, docs/MEWS.md#portfolio). Property 0 is today's single dataset with its
well-known tokens; every other tenant's data, token and integration id derive from the seed
and the tenant's label, so the same config serves the same world.

Webhook routing (docs/MEWS.md#general-webhooks, #portfolio): a General Webhook message
carries one ``EnterpriseId`` and the tenant's one ``IntegrationId``. A portfolio is one
integration (one AccessToken, delivered by one IntegrationCreated), so all its messages share
its IntegrationId while the EnterpriseId names the enterprise the record belongs to: the reservation's or resource's enterprise, and
the chain's first enterprise for customers (chain-level records).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.simulator.config import SimulatorConfig
from shared.simulator.data import SimData, _Ids, generate, portfolio_enterprise
from shared.simulator.queries import RequestError

INTEGRATION_NAME = "Guest Data Hub"
PORTFOLIO_NAME = "Simulated Portfolio"


@dataclass(frozen=True)
class Property:
    """What a user needs to connect one tenant by hand (the tokens are test tokens)."""

    index: int
    name: str
    chain_id: str
    enterprise_ids: tuple[str, ...]
    access_token: str
    integration_id: str
    is_portfolio: bool
    portfolio_enterprise_id: str | None = None  # the dummy enterprise (portfolio only)
    enabled: bool = True


def derived_seed(seed: int, label: str) -> int:
    digest = hashlib.sha256(f"guesthub-simulator:{seed}:{label}:seed".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def derived_token(seed: int, label: str) -> str:
    """A token of the documented shape: 32 hex, ``-``, 31 hex (docs/MEWS.md#authentication)."""
    digest = hashlib.sha256(f"guesthub-simulator:{seed}:{label}:token".encode()).hexdigest()
    return f"{digest[:32]}-{digest[32:63]}".upper()


def token_label(token: str) -> str:
    """How stats name a token: a hash prefix, never the token."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


@dataclass(eq=False)
class Tenant:
    """One connection's data, its tokens (the first is the one IntegrationCreated delivers and
    a rotation replaces; property 0 keeps its other well-known tokens as aliases), the random
    source of its mutations and the state of its integration."""

    index: int
    label: str
    data: SimData
    tokens: list[str]
    seed: int
    portfolio: dict[str, Any] | None = None  # the dummy enterprise of a portfolio
    enabled: bool = True
    rotations: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed + 1)  # mutations and duplicate webhooks
        self.new_id = _Ids(random.Random(self.seed + 2))

    @property
    def is_portfolio(self) -> bool:
        return self.portfolio is not None

    @property
    def name(self) -> str:
        return str((self.portfolio or self.data.enterprises[0])["Name"])

    @property
    def enterprise_ids(self) -> tuple[str, ...]:
        return tuple(e["Id"] for e in self.data.enterprises)

    def info(self) -> Property:
        return Property(
            index=self.index,
            name=self.name,
            chain_id=self.data.chain_id,
            enterprise_ids=self.enterprise_ids,
            access_token=self.tokens[0],
            integration_id=self.data.integration_id,
            is_portfolio=self.is_portfolio,
            portfolio_enterprise_id=self.portfolio["Id"] if self.portfolio else None,
            enabled=self.enabled,
        )

    def covers(self, enterprise_id: str) -> bool:
        dummy = self.portfolio["Id"] if self.portfolio else None
        return enterprise_id in self.enterprise_ids or enterprise_id == dummy

    def enterprise_for_configuration(self, enterprise_id: Any) -> dict[str, Any]:
        """``configuration/get``: the enterprise asked for, else the token's own (a portfolio's
        dummy enterprise)."""
        if enterprise_id is None:
            return self.portfolio or self.data.enterprises[0]
        for enterprise in [*self.data.enterprises, *([self.portfolio] if self.portfolio else [])]:
            if enterprise["Id"] == enterprise_id:
                return enterprise
        raise RequestError(400, "Invalid EnterpriseId.")

    def check_read(self, operation: str, body: dict[str, Any]) -> None:
        if self.is_portfolio and operation == "customers/getAll" and not body.get("ChainIds"):
            raise RequestError(
                400, "Invalid ChainIds: ChainIds is required with a portfolio AccessToken."
            )

    def check_write(self, body: dict[str, Any]) -> None:
        """Writes with a portfolio token name the chain (docs/MEWS.md#portfolio)."""
        if not self.is_portfolio:
            return
        chain_id = body.get("ChainId")
        if not chain_id:
            raise RequestError(
                400, "Invalid ChainId: ChainId is required with a portfolio AccessToken."
            )
        if chain_id != self.data.chain_id:
            raise RequestError(400, "Invalid ChainId.")

    def enterprise_of(self, discriminator: str, record_id: str) -> str:
        """The EnterpriseId a General Webhook about this record carries (module docstring)."""
        first: str = self.data.enterprises[0]["Id"]
        if not self.is_portfolio:
            return first
        if discriminator == "ServiceOrderUpdated" and record_id in self.data.reservations:
            service = self.data.reservations[record_id]["ServiceId"]
            return self.data.services.get(service, first)
        if discriminator == "ResourceUpdated" and record_id in self.data.resources:
            return str(self.data.resources[record_id]["EnterpriseId"])
        return first

    def rotate(self, root_seed: int) -> str:
        """IntegrationApiKeyCreated: a new primary token; the old one stops working."""
        self.rotations += 1
        self.tokens[0] = derived_token(root_seed, f"{self.label}:rotation-{self.rotations}")
        return self.tokens[0]


def build_tenants(config: SimulatorConfig, now: datetime | None = None) -> list[Tenant]:
    """Property 0 (today's data and tokens), properties 1..N-1, then the portfolio if any."""
    first = generate(
        seed=config.seed,
        customers=config.customers,
        enterprises=config.enterprises,
        now=now,
        history_days=config.history_days,
        duplicates=config.duplicates,
    )
    tenants = [Tenant(0, "property-0", first, list(config.access_tokens), config.seed)]
    for index in range(1, config.properties):
        label = f"property-{index}"
        seed = derived_seed(config.seed, label)
        name = f"Simulated Hotel {index + 1}"
        data = generate(
            seed=seed,
            customers=config.customers,
            now=first.now,
            history_days=config.history_days,
            chain_name=f"{name} Group",
            enterprise_names=(name,),
            duplicates=config.duplicates,
        )
        tenants.append(Tenant(index, label, data, [derived_token(config.seed, label)], seed))
    if config.portfolio_enterprises > 0:
        seed = derived_seed(config.seed, "portfolio")
        data = generate(
            seed=seed,
            customers=config.customers,
            enterprises=config.portfolio_enterprises,
            now=first.now,
            history_days=config.history_days,
            chain_name=PORTFOLIO_NAME,
            enterprise_names=(),
        )
        dummy = portfolio_enterprise(data, derived_seed(seed, "dummy"), PORTFOLIO_NAME)
        token = derived_token(config.seed, "portfolio")
        tenants.append(Tenant(len(tenants), "portfolio", data, [token], seed, dummy))
    return tenants


def select(tenants: list[Tenant], selector: Any) -> list[Tenant]:
    """Admin selectors: None (property 0), an index, an enterprise id, or ``"all"``."""
    if selector is None:
        return tenants[:1]
    if selector == "all":
        return list(tenants)
    if isinstance(selector, int) and not isinstance(selector, bool):
        if 0 <= selector < len(tenants):
            return [tenants[selector]]
        raise RequestError(400, f"No property {selector}: there are {len(tenants)}.")
    if isinstance(selector, str):
        if selector.isdigit():
            return select(tenants, int(selector))
        matches = [t for t in tenants if t.covers(selector)]
        if matches:
            return matches
    raise RequestError(400, f"No property {selector!r}: give an index, an enterprise id or 'all'.")
