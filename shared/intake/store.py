"""Store-and-acknowledge: the webhook's whole job while Mews waits (≤ 5 s, we take ms)."""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet

from shared.db.store import Store
from shared.intake.events import MalformedBody, Parsed, parse_body
from shared.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class IntakeResult:
    status: int  # HTTP status to answer
    body: dict[str, Any]


def token_matches(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison of the URL secret; no secret configured means no access."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


async def accept_webhook(
    store: Store,
    body: bytes,
    token: str | None,
    *,
    secret: str | None,
    encryption_key: str | None = None,
) -> IntakeResult:
    if not token_matches(token, secret):
        return IntakeResult(401, {"error": "unauthorized"})
    text = body.decode("utf-8", errors="replace")
    try:
        parsed = parse_body(body)
    except MalformedBody as exc:
        stored = await store.call(
            "inbox_add", p_source="general_webhook", p_body_raw=text, p_error=str(exc)
        )
        return IntakeResult(400, {"error": str(exc), "stored": stored["id"]})
    stored = await store.call(
        "inbox_add",
        p_source=parsed.kind,
        p_body_raw=text,
        p_enterprise_id=_uuid_or_none(parsed.enterprise_id),
        p_unknown=list(parsed.unknown),
    )
    if parsed.unknown:
        log.warning(
            "unknown discriminators stored", kinds=list(parsed.unknown), inbox_id=stored["id"]
        )
    if parsed.kind == "integration_webhook":
        await apply_integration(store, parsed, encryption_key)
    return IntakeResult(202, {"stored": stored["id"]})


def _uuid_or_none(value: str | None) -> str | None:
    """The enterprise id column is a uuid; a body naming something else is still stored."""
    try:
        return str(uuid.UUID(value)) if value else None
    except ValueError:
        return None


async def apply_integration(
    store: Store, parsed: Parsed, encryption_key: str | None
) -> dict[str, Any]:
    """A connection's lifecycle: created (token), rotated, paused, resumed, purged."""
    action = parsed.body["Action"]
    data = parsed.body["Data"]
    integration = data.get("Integration") or {}
    token = data.get("AccessToken") if action == "IntegrationCreated" else data.get("ApiKey")
    encrypted = None
    if token:
        if not encryption_key:
            log.error("no TOKEN_ENCRYPTION_KEY: the new AccessToken is not stored", action=action)
        else:
            encrypted = Fernet(encryption_key.encode()).encrypt(str(token).encode()).decode()
    enterprise = data.get("Enterprise") or {}
    result: dict[str, Any] = await store.call(
        "connection_apply",
        p_action=action,
        p_integration_id=integration.get("Id"),
        p_enterprise_id=enterprise.get("Id"),
        p_enterprise_name=enterprise.get("Name"),
        p_token_encrypted=encrypted,
    )
    log.info("connection changed", action=action, status=result["status"])
    return result


async def store_websocket_frame(store: Store, frame: str) -> dict[str, Any]:
    try:
        parsed = parse_body(frame, source="websocket")
    except MalformedBody as exc:
        stored: dict[str, Any] = await store.call(
            "inbox_add", p_source="websocket", p_body_raw=frame, p_error=str(exc)
        )
        return stored
    result: dict[str, Any] = await store.call(
        "inbox_add", p_source="websocket", p_body_raw=frame, p_unknown=list(parsed.unknown)
    )
    return result
