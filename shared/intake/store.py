"""Store-and-acknowledge: the webhook's whole job while Mews waits (≤ 5 s, we take ms).

Answers (docs/MEWS.md#webhook-delivery: any non-2xx makes Mews re-send later):

- 202 ``{"stored": id}`` — stored for processing (``id`` may be an identical body stored
  earlier: the database deduplicates, this code passes its id through).
- 400 ``{"error": reason, "stored": id}`` — the body cannot be accepted; it is stored as
  rejected (secrets removed, NUL replaced) so that it can be inspected.
- 401 — wrong or missing ``?Token=``; nothing stored.
- 413 ``{"error": ...}`` — a body over :data:`BODY_MAX_BYTES`: nothing stored (Mews webhooks
  name ids and are a few KB; a body this large is no webhook of ours, and storing it would let
  one caller fill the inbox). The refusal is logged with the body's size.
- 503 ``{"error": ...}`` — the database cannot be reached or failed, or an AccessToken arrived
  and no TOKEN_ENCRYPTION_KEY is configured to keep it: nothing acknowledged, Mews re-sends.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet

from shared.db.store import Store, StoreError
from shared.intake.events import IntegrationEvent, MalformedBody, Parsed, parse_body
from shared.intake.redact import storable_text
from shared.logs import get_logger
from shared.mews.ratelimit import token_key
from shared.settings import INVALID_ENCRYPTION_KEY_MESSAGE, Settings

log = get_logger(__name__)

MISSING_KEY = "TOKEN_ENCRYPTION_KEY is not set: the AccessToken cannot be kept; Mews will retry"
BODY_MAX_BYTES = 1_048_576  # 1 MiB

OpenStore = Callable[[], Awaitable[Store]]


@dataclass(frozen=True)
class IntakeResult:
    status: int  # HTTP status to answer
    body: dict[str, Any]


def token_matches(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison of the URL secret; no secret configured means no access."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def refusal(body: bytes, token: str | None, secret: str | None) -> IntakeResult | None:
    """What to answer a request refused before anything is stored: 401 for a wrong URL secret,
    413 (logged with the size) for a body over the limit; None for a request to go on with."""
    if not token_matches(token, secret):
        return IntakeResult(401, {"error": "unauthorized"})
    if len(body) > BODY_MAX_BYTES:
        log.warning("webhook refused: body too large", size=len(body), limit=BODY_MAX_BYTES)
        return IntakeResult(
            413,
            {
                "error": f"body of {len(body)} bytes is over the limit of {BODY_MAX_BYTES}"
                " bytes; not stored"
            },
        )
    return None


def database_unavailable(exc: StoreError) -> IntakeResult:
    """503 for a database that cannot be reached or failed: Mews re-sends later. The answer
    names only the failed call and its SQLSTATE, never the driver's text (host, URL)."""
    log.error("webhook not stored: database unavailable", error=str(exc))
    code = f", SQLSTATE {exc.code}" if exc.code else ""
    return IntakeResult(
        503, {"error": f"database unavailable ({exc.fn} failed{code}); Mews will retry"}
    )


async def accept_webhook(
    open_store: OpenStore,
    body: bytes,
    token: str | None,
    *,
    secret: str | None,
    encryption_key: str | None = None,
) -> IntakeResult:
    """Check the URL secret, then the body's size and content, store it (secrets removed), apply an Integration
    Webhook to its connection, and say what to answer. ``open_store`` is called only once the
    URL secret matched and the body is to be stored."""
    refused = refusal(body, token, secret)
    if refused is not None:
        return refused
    url_secret = (token,) if token else ()  # never stored, wherever the body repeats it
    try:
        parsed = parse_body(body)
    except MalformedBody as exc:
        return await _store_rejected(
            open_store, exc.kind, storable_text(body, url_secret), str(exc)
        )
    event = parsed.integration
    encrypted: str | None = None
    if event is not None and event.token is not None:
        if not encryption_key:
            log.error(MISSING_KEY, action=event.action, integration_id=event.integration_id)
            return IntakeResult(503, {"error": MISSING_KEY})
        encrypted = _encrypt(event.token, encryption_key)
        if encrypted is None:
            return IntakeResult(500, {"error": INVALID_ENCRYPTION_KEY_MESSAGE})
    try:
        return await _store_accepted(open_store, parsed, storable_text(body, url_secret), encrypted)
    except StoreError as exc:
        return database_unavailable(exc)


async def answer_webhook(
    open_store: OpenStore, body: bytes, token: str | None, settings: Settings
) -> IntakeResult:
    """:func:`accept_webhook` with the URL secret and the encryption key of ``settings``: what
    every server of the webhook (the Cloud Function, the demo's endpoint) runs per request."""
    return await accept_webhook(
        open_store,
        body,
        token,
        secret=settings.webhook_secret.get_secret_value() if settings.webhook_secret else None,
        encryption_key=settings.token_encryption_key.get_secret_value()
        if settings.token_encryption_key
        else None,
    )


def _encrypt(token: str, key: str) -> str | None:
    """The token encrypted with the key; None (logged) when the key is not a Fernet key —
    Settings refuse such a key, so only a caller passing one directly gets here."""
    try:
        fernet = Fernet(key.encode())
    except ValueError:
        fernet = None
    if fernet is None:
        log.error(INVALID_ENCRYPTION_KEY_MESSAGE)
        return None
    return fernet.encrypt(token.encode()).decode()


async def _store_accepted(
    open_store: OpenStore, parsed: Parsed, text: str, token_encrypted: str | None
) -> IntakeResult:
    store = await open_store()
    stored = await store.call(
        "inbox_add",
        p_source=parsed.kind,
        p_body_raw=text,
        p_enterprise_id=_uuid_or_none(parsed.enterprise_id),
        p_integration_id=_uuid_or_none(_integration_id(parsed)),
        p_unknown=list(parsed.unknown),
    )
    if stored.get("status") == "rejected":
        # the database could not take what Python could parse: never acknowledge it
        error = str(stored.get("error") or "the database rejected the body")
        log.warning("webhook rejected by the database", error=error, inbox_id=stored["id"])
        return IntakeResult(400, {"error": error, "stored": stored["id"]})
    if parsed.unknown:
        log.warning(
            "unknown discriminators stored", kinds=list(parsed.unknown), inbox_id=stored["id"]
        )
    event = parsed.integration
    if event is not None and event.integration_id is not None:
        await apply_integration(
            store, event, token_encrypted, token_key(event.token) if event.token else None
        )
    answer: dict[str, Any] = {"stored": stored["id"]}
    if stored.get("duplicate"):
        answer["duplicate"] = True
    return IntakeResult(202, answer)


async def _store_rejected(open_store: OpenStore, kind: str, text: str, reason: str) -> IntakeResult:
    try:
        store = await open_store()
        stored = await store.call("inbox_add", p_source=kind, p_body_raw=text, p_error=reason)
    except StoreError as exc:
        return database_unavailable(exc)
    log.warning("webhook rejected", reason=reason, inbox_id=stored["id"])
    return IntakeResult(400, {"error": reason, "stored": stored["id"]})


def _integration_id(parsed: Parsed) -> str | None:
    """The connection a General Webhook names (it routes the events to their connection)."""
    if parsed.integration is not None:
        return parsed.integration.integration_id
    value = parsed.body.get("IntegrationId") if isinstance(parsed.body, dict) else None
    return value if isinstance(value, str) else None


def _uuid_or_none(value: str | None) -> str | None:
    """The enterprise id column is a uuid; a body naming something else is still stored."""
    try:
        return str(uuid.UUID(value)) if value else None
    except ValueError:
        return None


async def apply_integration(
    store: Store,
    event: IntegrationEvent,
    token_encrypted: str | None,
    key: str | None = None,
) -> dict[str, Any]:
    """A connection's lifecycle: created (token), rotated, paused, resumed, purged.
    ``token_encrypted`` is the event's token already encrypted with TOKEN_ENCRYPTION_KEY,
    ``key`` its budget key (a hash)."""
    result: dict[str, Any] = await store.call(
        "connection_apply",
        p_action=event.action,
        p_integration_id=event.integration_id,
        p_enterprise_id=event.enterprise_id,
        p_enterprise_name=event.enterprise_name,
        p_token_encrypted=token_encrypted,
        p_token_key=key,
    )
    log.info("connection changed", action=event.action, status=result["status"])
    return result


async def store_websocket_frame(
    store: Store, frame: str, *, integration_id: str | None = None
) -> dict[str, Any]:
    """Store one WebSocket frame (a frame with NUL is stored rejected, U+0000 → U+FFFD), with
    the connection whose socket received it (WebSocket events name no enterprise)."""
    routed = {"p_integration_id": integration_id} if integration_id else {}
    try:
        parsed = parse_body(frame, source="websocket")
    except MalformedBody as exc:
        stored: dict[str, Any] = await store.call(
            "inbox_add",
            p_source="websocket",
            p_body_raw=storable_text(frame),
            p_error=str(exc),
            **routed,
        )
        return stored
    result: dict[str, Any] = await store.call(
        "inbox_add",
        p_source="websocket",
        p_body_raw=storable_text(frame),
        p_unknown=list(parsed.unknown),
        **routed,
    )
    return result
