"""Parsing what Mews sends us, and planning what to fetch (pure).

General Webhooks carry ids only; WebSocket frames carry reservation and resource events;
Integration Webhooks carry the connection's lifecycle and are checked against
docs/MEWS.md#integration-webhooks (:func:`check_integration`). Unknown discriminators, types
and actions are kept and reported, never an error. A NUL character (raw, or a ``\\u0000``
escape in any JSON string) is always refused: PostgreSQL can store it neither as text nor as
jsonb.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson

from shared.jsonnul import find_nul
from shared.sync.entities import SPECS

# discriminator / WebSocket type → the entity we mirror, as the entity registry declares them,
# and those Mews sends that we know and do not mirror (None)
GENERAL_DISCRIMINATORS: dict[str, str | None] = {
    **{event: spec.name for spec in SPECS.values() for event in spec.webhook_events},
    "MessageAdded": None,
    "ResourceBlockUpdated": None,
    "PaymentUpdated": None,
}
WEBSOCKET_TYPES: dict[str, str | None] = {
    **{spec.websocket_type: spec.name for spec in SPECS.values() if spec.websocket_type},
    "DeviceCommand": None,
    "PriceUpdate": None,
}
INTEGRATION_ACTIONS = (
    "IntegrationCreated",
    "IntegrationEnabled",
    "IntegrationDisabled",
    "IntegrationCanceled",
    "IntegrationReinstated",
    "IntegrationDeleted",
    "IntegrationApiKeyCreated",
)


# Integration Webhook actions that carry a token: the action → the key in Data that holds it
TOKEN_ACTIONS: dict[str, str] = {
    "IntegrationCreated": "AccessToken",
    "IntegrationApiKeyCreated": "ApiKey",
}
NUL_REASON = "body contains a NUL character (U+0000)"
# the longest Enterprise.Name an IntegrationCreated may carry (a hotel's name; the database bounds
# connections.enterprise_name more loosely, as a portfolio's name lists its hotels)
ENTERPRISE_NAME_MAX_CHARS = 1000

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class MalformedBody(ValueError):  # noqa: N818 - a reason, shown to the sender
    """The body cannot be understood; the message says why. ``kind`` is the inbox source to
    file it under (what the body looked like, as far as it could be told)."""

    def __init__(self, reason: str, *, kind: str = "general_webhook") -> None:
        super().__init__(reason)
        self.kind = kind


@dataclass(frozen=True)
class IntegrationEvent:
    """A checked Integration Webhook (docs/MEWS.md#integration-webhooks), ready to apply to
    ``connections``.

    ``integration_id`` is None only for an unknown action without a usable ``Integration.Id``
    (stored and reported, not applied). ``token`` is the AccessToken (IntegrationCreated) or the
    regenerated key (IntegrationApiKeyCreated); it is kept out of ``repr``.
    """

    action: str
    known: bool
    integration_id: str | None
    enterprise_id: str | None = None
    enterprise_name: str | None = None
    token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Parsed:
    kind: str  # general_webhook | integration_webhook | websocket
    enterprise_id: str | None
    body: dict[str, Any]
    unknown: tuple[str, ...] = ()
    integration: IntegrationEvent | None = None


def parse_body(raw: bytes | str, *, source: str = "webhook") -> Parsed:
    """Classify and check a body. Raises :class:`MalformedBody` with the reason.

    Refused before anything else: a NUL character, raw or as a ``\\u0000`` escape in any JSON
    string (key or value) — PostgreSQL text and jsonb cannot hold U+0000 — and bytes that are
    not UTF-8.
    """
    kind = "websocket" if source == "websocket" else "general_webhook"
    body = _load(raw, kind)
    if isinstance(body, dict) and "Action" in body and source != "websocket":
        kind = "integration_webhook"
    if (b"\\u0000" in raw) if isinstance(raw, bytes) else ("\\u0000" in raw):
        where = find_nul(body)
        if where is not None:
            raise MalformedBody(f"{NUL_REASON} {where}", kind=kind)
    if not isinstance(body, dict):
        raise MalformedBody("body is not a JSON object", kind=kind)
    if source == "websocket":
        events = body.get("Events")
        if not isinstance(events, list):
            raise MalformedBody("WebSocket frame has no Events array", kind=kind)
        unknown = sorted(
            {
                str(e.get("Type"))
                for e in events
                if isinstance(e, dict) and e.get("Type") not in WEBSOCKET_TYPES
            }
        )
        return Parsed("websocket", None, body, tuple(unknown))
    if kind == "integration_webhook":
        event = check_integration(body)
        return Parsed(
            "integration_webhook",
            event.enterprise_id,
            body,
            () if event.known else (event.action,),
            event,
        )
    return _general(body)


def _load(raw: bytes | str, kind: str) -> Any:
    """JSON, refusing a raw NUL (named by offset) and bytes that are not UTF-8."""
    index = raw.find(b"\x00") if isinstance(raw, bytes) else raw.find("\x00")
    if index >= 0:
        unit = "byte" if isinstance(raw, bytes) else "character"
        raise MalformedBody(f"{NUL_REASON} at {unit} {index}", kind=kind)
    if isinstance(raw, bytes):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedBody(
                f"body is not JSON: invalid UTF-8 at byte {exc.start}", kind=kind
            ) from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedBody(f"body is not JSON: {exc}", kind=kind) from None


def _general(body: dict[str, Any]) -> Parsed:
    """A General Webhook (docs/MEWS.md#general-webhooks): an EnterpriseId and events with a
    Value.Id."""
    events = body.get("Events")
    if not isinstance(events, list):
        raise MalformedBody("General Webhook without an Events array")
    if not isinstance(body.get("EnterpriseId"), str):
        raise MalformedBody("General Webhook without an EnterpriseId")
    for index, event in enumerate(events):
        if not isinstance(event, dict) or not isinstance(event.get("Discriminator"), str):
            raise MalformedBody(f"event {index} has no Discriminator")
        value = event.get("Value")
        if not isinstance(value, dict) or not isinstance(value.get("Id"), str):
            raise MalformedBody(f"event {index} ({event['Discriminator']}) has no Value.Id")
    unknown = sorted(
        {e["Discriminator"] for e in events if e["Discriminator"] not in GENERAL_DISCRIMINATORS}
    )
    return Parsed("general_webhook", body["EnterpriseId"], body, tuple(unknown))


def check_integration(body: dict[str, Any]) -> IntegrationEvent:
    """Check an Integration Webhook against docs/MEWS.md#integration-webhooks (pure).

    Every known action needs ``Data.Integration`` with a UUID ``Id``; IntegrationCreated also
    ``Data.Enterprise`` with a UUID ``Id`` and a non-empty ``Data.AccessToken``;
    IntegrationApiKeyCreated a non-empty ``Data.ApiKey``. An unknown action needs only a string
    ``Action`` and a ``Data`` object: it is stored and reported, and applied to its connection
    only when it names a UUID ``Integration.Id``.
    """
    action = body.get("Action")
    if not isinstance(action, str):
        raise _integration_error(f"Action is not a string (got {_json_type(action)})")
    data = body.get("Data")
    if not isinstance(data, dict):
        raise _integration_error(f"Data is not an object (got {_json_type(data, 'Data' in body)})")
    known = action in INTEGRATION_ACTIONS
    integration = data.get("Integration")
    if not known:
        return IntegrationEvent(
            action, False, _uuid_in(integration), _uuid_in(data.get("Enterprise"))
        )
    integration_id = _uuid_field(data, "Integration")
    enterprise_id: str | None = None
    enterprise_name: str | None = None
    if action == "IntegrationCreated":
        enterprise_id = _uuid_field(data, "Enterprise")
        name = data["Enterprise"].get("Name")
        enterprise_name = name if isinstance(name, str) else None
        if enterprise_name is not None and len(enterprise_name) > ENTERPRISE_NAME_MAX_CHARS:
            raise _integration_error(
                f"Data.Enterprise.Name is {len(enterprise_name)} characters long"
                f" (at most {ENTERPRISE_NAME_MAX_CHARS})"
            )
    else:
        enterprise_id = _uuid_in(data.get("Enterprise"))
    token: str | None = None
    token_key = TOKEN_ACTIONS.get(action)
    if token_key is not None:
        value = data.get(token_key)
        if not isinstance(value, str) or not value.strip():
            got = "empty" if isinstance(value, str) else _json_type(value, token_key in data)
            raise _integration_error(f"Data.{token_key} is not a non-empty string (got {got})")
        token = value
    return IntegrationEvent(action, True, integration_id, enterprise_id, enterprise_name, token)


def _uuid_field(data: dict[str, Any], name: str) -> str:
    """``Data.<name>`` must be an object whose ``Id`` is a UUID string; returns the id."""
    value = data.get(name)
    if not isinstance(value, dict):
        raise _integration_error(
            f"Data.{name} is not an object (got {_json_type(value, name in data)})"
        )
    if not _is_uuid(value.get("Id")):
        raise _integration_error(f"Data.{name}.Id is not a UUID")
    return str(value["Id"])


def _uuid_in(value: Any) -> str | None:
    """An optional ``{Id}`` object's id, when it is a UUID."""
    if isinstance(value, dict) and _is_uuid(value.get("Id")):
        return str(value["Id"])
    return None


def _is_uuid(value: Any) -> bool:
    """The canonical 8-4-4-4-12 hex form Mews sends (and PostgreSQL's uuid accepts)."""
    return isinstance(value, str) and _UUID.match(value) is not None


def _integration_error(reason: str) -> MalformedBody:
    return MalformedBody(f"Integration webhook: {reason}", kind="integration_webhook")


def _json_type(value: Any, present: bool = True) -> str:
    """What a JSON value is, for a reason ("null", "a string", …; "nothing" when absent)."""
    if not present:
        return "nothing"
    for types, name in _JSON_TYPES:
        if isinstance(value, types):
            return name
    return "null" if value is None else "an object"


_JSON_TYPES: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (bool, "a boolean"),
    (str, "a string"),
    ((int, float), "a number"),
    (list, "an array"),
)


@dataclass
class FetchPlan:
    """Ids to fetch per entity, deduplicated, and the inbox rows they came from."""

    ids: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    inbox_ids: list[int] = field(default_factory=list)
    ignored: int = 0
    unknown: int = 0
    events: int = 0


def plan_fetches(claimed: list[dict[str, Any]]) -> FetchPlan:
    """Claimed inbox rows → what to fetch. ``CustomerAdded``+``CustomerUpdated`` of one id, or
    the same id in several messages, is one fetch."""
    plan = FetchPlan()
    for row in claimed:
        plan.inbox_ids.append(int(row["id"]))
        body = row.get("body") or {}
        source = row.get("source")
        if source == "general_webhook":
            for event in body.get("Events") or []:
                plan.events += 1
                entity = GENERAL_DISCRIMINATORS.get(event.get("Discriminator"), "?")
                _add(plan, entity, (event.get("Value") or {}).get("Id"))
        elif source == "websocket":
            for event in body.get("Events") or []:
                plan.events += 1
                _add(plan, WEBSOCKET_TYPES.get(event.get("Type"), "?"), event.get("Id"))
    return plan


def _add(plan: FetchPlan, entity: str | None, record_id: Any) -> None:
    if entity == "?":
        plan.unknown += 1
    elif entity is None or not isinstance(record_id, str):
        plan.ignored += 1
    else:
        plan.ids[entity].add(record_id)
