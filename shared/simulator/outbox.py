"""What the simulator sends out, built from what changed (pure): General Webhook events and
messages, Integration Webhooks and WebSocket events (docs/MEWS.md#general-webhooks,
#integration-webhooks, #websocket)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.simulator.data import SimData
from shared.simulator.queries import RequestError
from shared.simulator.tenants import INTEGRATION_NAME, Tenant

Event = dict[str, Any]


def customer_events(ids: list[str], *, added: bool = False) -> list[Event]:
    """A new customer yields CustomerAdded and CustomerUpdated; a change CustomerUpdated."""
    events = []
    for customer_id in ids:
        if added:
            events.append({"Discriminator": "CustomerAdded", "Value": {"Id": customer_id}})
        events.append({"Discriminator": "CustomerUpdated", "Value": {"Id": customer_id}})
    return events


def mutation_events(changed: dict[str, list[str]]) -> list[Event]:
    """The General Webhook events of an admin mutation."""
    events = customer_events(changed["customers_added"], added=True)
    events += customer_events(changed["customers_updated"])
    events += [
        {"Discriminator": "ServiceOrderUpdated", "Value": {"Id": i}}
        for i in changed["reservations"]
    ]
    events += [
        {"Discriminator": "ResourceUpdated", "Value": {"Id": i}} for i in changed["resources"]
    ]
    return events


def socket_events(data: SimData, changed: dict[str, list[str]]) -> list[Event]:
    """The WebSocket events of an admin mutation (reservations and resources only)."""
    reservations = [
        {
            "Type": "Reservation",
            "Id": r["Id"],
            "State": r["State"],
            "StartUtc": r["StartUtc"],
            "EndUtc": r["EndUtc"],
            "AssignedResourceId": r["AssignedResourceId"],
        }
        for r in (data.reservations[i] for i in changed["reservations"])
    ]
    resources = [
        {"Type": "Resource", "Id": r["Id"], "State": r["State"]}
        for r in (data.resources[i] for i in changed["resources"])
    ]
    return reservations + resources


def by_enterprise(tenant: Tenant, events: list[Event]) -> list[tuple[str, list[Event]]]:
    """Events grouped by the enterprise their message names, in the order they came."""
    groups: dict[str, list[Event]] = {}
    for event in events:
        enterprise_id = tenant.enterprise_of(event["Discriminator"], event["Value"]["Id"])
        groups.setdefault(enterprise_id, []).append(event)
    return list(groups.items())


def general_message(tenant: Tenant, enterprise_id: str, events: list[Event]) -> dict[str, Any]:
    return {
        "EnterpriseId": enterprise_id,
        "IntegrationId": tenant.data.integration_id,
        "Events": events,
    }


# -- Integration Webhooks: each action changes the tenant, then says what Data carries ------


def _created(tenant: Tenant, seed: int, now: str) -> dict[str, Any]:
    tenant.enabled = True
    enterprise = tenant.portfolio or tenant.data.enterprises[0]
    return {
        "Enterprise": {"Id": enterprise["Id"], "Name": enterprise["Name"]},
        "Service": None,
        "Requestor": None,
        "AccessToken": tenant.tokens[0],
        "CreatedUtc": now,
        "IsEnabled": True,
    }


def _enabled(tenant: Tenant, seed: int, now: str) -> dict[str, Any]:
    tenant.enabled = True
    return {}


def _disabled(tenant: Tenant, seed: int, now: str) -> dict[str, Any]:
    tenant.enabled = False
    return {}


def _deleted(tenant: Tenant, seed: int, now: str) -> dict[str, Any]:
    tenant.enabled = False
    return {"DeletedUtc": now}


def _api_key_created(tenant: Tenant, seed: int, now: str) -> dict[str, Any]:
    return {"ApiKey": tenant.rotate(seed)}


INTEGRATION_ACTIONS: dict[str, Callable[[Tenant, int, str], dict[str, Any]]] = {
    "IntegrationCreated": _created,
    "IntegrationEnabled": _enabled,
    "IntegrationDisabled": _disabled,
    "IntegrationCanceled": _disabled,
    "IntegrationReinstated": _enabled,
    "IntegrationDeleted": _deleted,
    "IntegrationApiKeyCreated": _api_key_created,
}


def integration_message(tenant: Tenant, action: str, seed: int, now: str) -> dict[str, Any]:
    """Apply an Integration Webhook's action to the tenant (a disabled or deleted integration
    answers 401; a new API key replaces the token) and return the webhook announcing it."""
    change = INTEGRATION_ACTIONS.get(action)
    if change is None:
        known = ", ".join(INTEGRATION_ACTIONS)
        raise RequestError(400, f"Unknown action {action!r}: one of {known}.")
    data = change(tenant, seed, now)
    data["Integration"] = {"Id": tenant.data.integration_id, "Name": INTEGRATION_NAME}
    return {"Action": action, "Data": data}
