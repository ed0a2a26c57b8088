"""What a job needs to know of one connection (pure: no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import SecretStr

from shared.mews.ratelimit import token_key

SOURCES = ("webhook", "manual", "environment")


@dataclass(frozen=True)
class Connection:
    """One AccessToken and what it covers.

    ``id`` is the Mews integration id (a uuid; for a connection added by hand or from the
    environment, a uuid derived from the token's hash, so registering it again is a no-op).
    ``enterprise_ids`` are the enterprises the token covers, as discovered from Mews
    (``configuration/get``, or ``enterprises/getAll`` for a portfolio token); empty until the
    first job has asked.
    """

    id: str
    access_token: SecretStr = field(repr=False)
    source: str = "webhook"
    name: str | None = None
    enterprise_ids: tuple[str, ...] = ()
    is_portfolio: bool = False
    discovered_at: str | None = None  # when Mews last said what the token covers

    @property
    def key(self) -> str:
        """The token's budget key (a hash, never the token)."""
        return token_key(self.access_token.get_secret_value())

    def label(self) -> str:
        """How logs and people name it: its name, else its id."""
        return self.name or self.id
