"""Parsing what Mews sends us, and planning what to fetch (pure).

General Webhooks carry ids only; WebSocket frames carry reservation and resource events;
Integration Webhooks carry the connection's lifecycle. Unknown discriminators and types are
kept and reported, never an error.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson

# discriminator / WebSocket type → the entity we mirror (None: known, not mirrored)
GENERAL_DISCRIMINATORS: dict[str, str | None] = {
    "CustomerAdded": "customers",
    "CustomerUpdated": "customers",
    "ServiceOrderUpdated": "reservations",
    "ResourceUpdated": "resources",
    "MessageAdded": None,
    "ResourceBlockUpdated": None,
    "PaymentUpdated": None,
}
WEBSOCKET_TYPES: dict[str, str | None] = {
    "Reservation": "reservations",
    "Resource": "resources",
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


class MalformedBody(ValueError):  # noqa: N818 - a reason, shown to the sender
    """The body cannot be understood; the message says why."""


@dataclass(frozen=True)
class Parsed:
    kind: str  # general_webhook | integration_webhook | websocket
    enterprise_id: str | None
    body: dict[str, Any]
    unknown: tuple[str, ...] = ()


def parse_body(raw: bytes | str, *, source: str = "webhook") -> Parsed:
    """Classify and check a body. Raises :class:`MalformedBody` with the reason."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedBody(f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise MalformedBody("body is not a JSON object")
    if source == "websocket":
        events = body.get("Events")
        if not isinstance(events, list):
            raise MalformedBody("WebSocket frame has no Events array")
        unknown = sorted(
            {
                str(e.get("Type"))
                for e in events
                if isinstance(e, dict) and e.get("Type") not in WEBSOCKET_TYPES
            }
        )
        return Parsed("websocket", None, body, tuple(unknown))
    if "Action" in body:
        if not isinstance(body.get("Data"), dict):
            raise MalformedBody("Integration Webhook without a Data object")
        action = str(body["Action"])
        unknown_action: tuple[str, ...] = () if action in INTEGRATION_ACTIONS else (action,)
        enterprise = (
            (body["Data"].get("Enterprise") or {}).get("Id")
            if isinstance(body["Data"].get("Enterprise"), dict)
            else None
        )
        return Parsed("integration_webhook", enterprise, body, unknown_action)
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
