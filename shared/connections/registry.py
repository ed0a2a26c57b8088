"""The connections table, from Python: register, claim, release, discover, list.

Tokens are kept encrypted (Fernet, TOKEN_ENCRYPTION_KEY) and decrypted only here, into a
:class:`~shared.connections.model.Connection` whose token is a ``SecretStr``. The environment's
MEWS_ACCESS_TOKEN (unless set empty) is registered as one connection whose token stays in the
environment: the database keeps only its hash, and its id is derived from that hash.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from pydantic import SecretStr

from shared.connections.model import Connection
from shared.db.store import Store
from shared.logs import get_logger
from shared.mews.client import MewsClient
from shared.mews.ratelimit import token_key
from shared.settings import Settings

log = get_logger(__name__)

# connections registered by hand or from the environment: their id is derived from the token's
# hash in this namespace, so registering the same token again is the same connection
NAMESPACE = uuid.UUID("7d0b5a3e-9f7c-4c47-9a51-5b0c4c1f6e21")
NO_KEY = (
    "TOKEN_ENCRYPTION_KEY is not set: connection tokens cannot be kept or read "
    "(generate one with `guesthub connections keygen`)"
)


class UnusableConnectionError(RuntimeError):
    """A connection cannot be used or registered; the message is one line, without secrets."""


def connection_id_for(access_token: str) -> str:
    """The id of a connection registered by hand or from the environment."""
    return str(uuid.uuid5(NAMESPACE, token_key(access_token)))


def environment_token(settings: Settings) -> SecretStr | None:
    """The environment's AccessToken, unless MEWS_ACCESS_TOKEN is set empty (no such connection)."""
    token = settings.mews_access_token
    return token if token.get_secret_value().strip() else None


def _fernet(settings: Settings) -> Fernet:
    if settings.token_encryption_key is None:
        raise UnusableConnectionError(NO_KEY)
    return Fernet(settings.token_encryption_key.get_secret_value().encode())


def encrypt_token(settings: Settings, access_token: str) -> str:
    return _fernet(settings).encrypt(access_token.encode()).decode()


async def register_environment(store: Store, settings: Settings) -> str | None:
    """Register the environment's token as a connection (idempotent); its id, or None."""
    token = environment_token(settings)
    if token is None:
        return None
    secret = token.get_secret_value()
    connection_id = connection_id_for(secret)
    await store.call(
        "connection_register",
        p_integration_id=connection_id,
        p_source="environment",
        p_token_key=token_key(secret),
    )
    return connection_id


async def register_manual(
    store: Store, settings: Settings, access_token: str, name: str | None = None
) -> dict[str, Any]:
    """Register a token set up by hand (kept encrypted)."""
    result: dict[str, Any] = await store.call(
        "connection_register",
        p_integration_id=connection_id_for(access_token),
        p_source="manual",
        p_token_key=token_key(access_token),
        p_token_encrypted=encrypt_token(settings, access_token),
        p_name=name,
    )
    return result


def decode(row: dict[str, Any], settings: Settings) -> Connection:
    """A claimed or listed row as a usable connection. Raises :class:`UnusableConnectionError` when
    its token cannot be read (no key, a different key, the environment's token changed)."""
    source = str(row.get("source") or "webhook")
    if source == "environment":
        token = environment_token(settings)
        if token is None or token_key(token.get_secret_value()) != row.get("token_key"):
            raise UnusableConnectionError(
                "this process's MEWS_ACCESS_TOKEN is not the token of this environment connection"
            )
    else:
        encrypted = row.get("token_encrypted")
        if not encrypted:
            raise UnusableConnectionError("the connection has no token")
        try:
            token = SecretStr(_fernet(settings).decrypt(str(encrypted).encode()).decode())
        except InvalidToken:
            raise UnusableConnectionError(
                "the stored token cannot be decrypted with TOKEN_ENCRYPTION_KEY (a different key?)"
            ) from None
    return Connection(
        id=str(row["integration_id"]),
        access_token=token,
        source=source,
        name=row.get("name"),
        enterprise_ids=tuple(str(e) for e in row.get("enterprise_ids") or ()),
        is_portfolio=bool(row.get("is_portfolio")),
        discovered_at=row.get("discovered_at"),
    )


Broken = list[tuple[str, str]]  # (connection id, why its token cannot be used)


def split_usable(
    rows: Iterable[dict[str, Any]], settings: Settings
) -> tuple[list[Connection], Broken]:
    """Rows of the connections table as usable connections, and those whose token cannot be
    read (each with the reason)."""
    usable: list[Connection] = []
    broken: Broken = []
    for row in rows:
        try:
            usable.append(decode(row, settings))
        except UnusableConnectionError as exc:
            broken.append((str(row["integration_id"]), str(exc)))
    return usable, broken


async def active_connections(store: Store, settings: Settings) -> list[Connection]:
    """Every active connection whose token Mews has not refused (the environment's included)."""
    await register_environment(store, settings)
    usable, broken = split_usable(await store.call("connections_active"), settings)
    for connection_id, reason in broken:
        log.warning("connection unusable", connection=connection_id, error=reason)
    return usable


async def claim(
    store: Store,
    settings: Settings,
    job: str,
    holder: str,
    *,
    limit: int,
    lease_seconds: int,
    every_seconds: int = 0,
    only: str | None = None,
    exclude: Iterable[str] = (),
) -> tuple[list[Connection], Broken]:
    """Claim up to ``limit`` due connections for ``job`` (or ``only`` that one), none of
    ``exclude``; also the (id, reason) of claimed ones whose token cannot be read (the caller
    releases them as failed)."""
    rows = await store.call(
        "connection_claim",
        p_job=job,
        p_holder=holder,
        p_limit=limit,
        p_lease_seconds=lease_seconds,
        p_every_seconds=every_seconds,
        p_integration_id=only,
        p_exclude=list(exclude),
    )
    return split_usable(rows, settings)


async def release(
    store: Store,
    job: str,
    connection_id: str,
    holder: str,
    status: str,
    *,
    completed: bool = True,
    error: str | None = None,
) -> None:
    await store.call(
        "connection_release",
        p_job=job,
        p_integration_id=connection_id,
        p_holder=holder,
        p_status=status,
        p_completed=completed,
        p_error=error,
    )


async def discover(store: Store, connection: Connection, client: MewsClient) -> Connection:
    """Ask Mews what the token covers (``configuration/get``; for a portfolio token
    ``enterprises/getAll``), record it, and return the connection with its enterprises."""
    config = await client.configuration()
    enterprises: list[dict[str, Any]]
    if config.enterprise.is_portfolio:
        enterprises = []
        async for page in client.enterprises():
            enterprises += [
                {"id": e.id, "chain_id": e.chain_id, "name": e.name} for e in page.items
            ]
    else:
        e = config.enterprise
        enterprises = [{"id": e.id, "chain_id": e.chain_id, "name": e.name}]
    await store.call(
        "connection_discovered",
        p_integration_id=connection.id,
        p_token_key=connection.key,
        p_enterprises=enterprises,
        p_is_portfolio=config.enterprise.is_portfolio,
    )
    return Connection(
        id=connection.id,
        access_token=connection.access_token,
        source=connection.source,
        name=connection.name or ", ".join(sorted(e["name"] for e in enterprises)) or None,
        enterprise_ids=tuple(e["id"] for e in enterprises),
        is_portfolio=config.enterprise.is_portfolio,
        discovered_at="now",
    )
