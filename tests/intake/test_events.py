"""Parsing and checking bodies (pure): NUL and bad bytes are refused with where they are,
Integration Webhooks are checked against docs/MEWS.md#integration-webhooks, General Webhooks as
before."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from shared.intake.events import NUL_REASON, MalformedBody, parse_body
from shared.jsonnul import find_nul
from tests.support.fixtures import FIXTURES, load

INTEGRATION_ID = "1a1a1a1a-0000-4000-8000-000000000001"


def reason(raw: bytes | str, **kwargs: Any) -> MalformedBody:
    with pytest.raises(MalformedBody) as caught:
        parse_body(raw, **kwargs)
    return caught.value


def test_a_raw_nul_byte_is_refused_with_its_offset() -> None:
    error = reason(b'{"EnterpriseId": "e\x00", "Events": []}')
    assert str(error) == f"{NUL_REASON} at byte 19"


def test_a_raw_nul_in_a_websocket_frame_is_refused_with_its_offset() -> None:
    error = reason('{"Events": []}\x00', source="websocket")
    assert str(error) == f"{NUL_REASON} at character 14"
    assert error.kind == "websocket"


def test_an_escaped_nul_in_a_value_is_refused_with_its_json_path() -> None:
    body = load("webhook_general")
    body["Events"][1]["Value"]["Id"] = "cccc\u0000"
    assert str(reason(json.dumps(body))) == f"{NUL_REASON} at $.Events[1].Value.Id"


def test_an_escaped_nul_in_a_key_is_refused_naming_the_object() -> None:
    raw = '{"EnterpriseId": "e", "Events": [{"Discriminator": "X", "Value": {"I\\u0000d": "x"}}]}'
    assert str(reason(raw)) == f"{NUL_REASON} in a key of $.Events[0].Value"


def test_an_odd_key_is_quoted_in_the_path_and_the_reason_never_holds_a_nul() -> None:
    raw = '{"a b": {"c\\u0000": 1}}'
    message = str(reason(raw))
    assert message == f'{NUL_REASON} in a key of $["a b"]'
    assert "\x00" not in message


def test_the_first_nul_in_document_order_is_named() -> None:
    raw = '{"a": ["ok", "\\u0000"], "b": "\\u0000"}'
    assert str(reason(raw)) == f"{NUL_REASON} at $.a[1]"


def test_an_escaped_backslash_before_u0000_is_not_a_nul() -> None:
    raw = r'{"EnterpriseId": "e", "Events": [{"Discriminator": "X", "Value": {"Id": "\\u0000"}}]}'
    assert parse_body(raw).body["Events"][0]["Value"]["Id"] == "\\u0000"


def test_an_escaped_nul_in_an_integration_webhook_is_filed_as_one() -> None:
    body = load("webhook_integration_disabled")
    body["Data"]["Integration"]["Name"] = "\u0000"
    error = reason(json.dumps(body))
    assert str(error) == f"{NUL_REASON} at $.Data.Integration.Name"
    assert error.kind == "integration_webhook"


def test_a_nul_at_any_depth_is_found_without_recursion() -> None:
    value: Any = "\x00"
    for _ in range(5000):
        value = [value]
    assert find_nul(value) == "at $" + "[0]" * 5000


def test_invalid_utf8_is_not_json_and_says_where() -> None:
    assert str(reason(b'{"a": "\xff"}')) == "body is not JSON: invalid UTF-8 at byte 7"


def test_general_webhooks_are_checked_as_before() -> None:
    parsed = parse_body((FIXTURES / "webhook_general.json").read_bytes())
    assert parsed.kind == "general_webhook"
    assert parsed.unknown == ()
    lax = {
        "EnterpriseId": "e",
        "IntegrationId": "i",
        "Events": [{"Discriminator": "New", "Value": {"Id": "x"}}],
    }
    assert parse_body(json.dumps(lax)).unknown == ("New",)


@pytest.mark.parametrize(
    "name",
    [
        "webhook_integration",
        "webhook_integration_api_key_created",
        "webhook_integration_disabled",
        "webhook_integration_deleted",
    ],
)
def test_the_documented_integration_webhooks_are_accepted(name: str) -> None:
    parsed = parse_body(json.dumps(load(name)))
    assert parsed.kind == "integration_webhook"
    assert parsed.unknown == ()
    assert parsed.integration is not None
    assert parsed.integration.integration_id == INTEGRATION_ID


def test_integration_created_yields_the_enterprise_and_the_token() -> None:
    body = load("webhook_integration")
    event = parse_body(json.dumps(body)).integration
    assert event is not None
    assert event.enterprise_id == body["Data"]["Enterprise"]["Id"]
    assert event.enterprise_name == body["Data"]["Enterprise"]["Name"]
    assert event.token == body["Data"]["AccessToken"]
    assert body["Data"]["AccessToken"] not in repr(event)


def test_integration_api_key_created_yields_the_regenerated_key() -> None:
    body = load("webhook_integration_api_key_created")
    event = parse_body(json.dumps(body)).integration
    assert event is not None
    assert event.token == body["Data"]["ApiKey"]


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    *parents, last = path.split(".")

    def change(body: dict[str, Any]) -> None:
        node = body
        for part in parents:
            node = node[part]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value

    return change


_DELETE = object()


@pytest.mark.parametrize(
    ("fixture", "change", "expected"),
    [
        (
            "webhook_integration_disabled",
            _set("Action", 7),
            "Action is not a string (got a number)",
        ),
        ("webhook_integration_disabled", _set("Data", None), "Data is not an object (got null)"),
        (
            "webhook_integration_disabled",
            _set("Data", _DELETE),
            "Data is not an object (got nothing)",
        ),
        (
            "webhook_integration_disabled",
            _set("Data.Integration", None),
            "Data.Integration is not an object (got null)",
        ),
        (
            "webhook_integration_disabled",
            _set("Data.Integration", "x"),
            "Data.Integration is not an object (got a string)",
        ),
        (
            "webhook_integration_deleted",
            _set("Data.Integration", _DELETE),
            "Data.Integration is not an object (got nothing)",
        ),
        (
            "webhook_integration_disabled",
            _set("Data.Integration.Id", "not-a-uuid"),
            "Data.Integration.Id is not a UUID",
        ),
        (
            "webhook_integration_disabled",
            _set("Data.Integration.Id", 12),
            "Data.Integration.Id is not a UUID",
        ),
        (
            "webhook_integration",
            _set("Data.Enterprise.Id", "e"),
            "Data.Enterprise.Id is not a UUID",
        ),
        (
            "webhook_integration",
            _set("Data.Enterprise", []),
            "Data.Enterprise is not an object (got an array)",
        ),
        (
            "webhook_integration",
            _set("Data.AccessToken", _DELETE),
            "Data.AccessToken is not a non-empty string (got nothing)",
        ),
        (
            "webhook_integration",
            _set("Data.AccessToken", ""),
            "Data.AccessToken is not a non-empty string (got empty)",
        ),
        (
            "webhook_integration",
            _set("Data.AccessToken", True),
            "Data.AccessToken is not a non-empty string (got a boolean)",
        ),
        (
            "webhook_integration_api_key_created",
            _set("Data.ApiKey", None),
            "Data.ApiKey is not a non-empty string (got null)",
        ),
        (
            "webhook_integration_api_key_created",
            _set("Data.Integration.Id", "urn:uuid:1a1a1a1a-0000-4000-8000-000000000001"),
            "Data.Integration.Id is not a UUID",
        ),
    ],
)
def test_an_integration_webhook_breaking_section_8_is_refused_naming_the_field(
    fixture: str, change: Callable[[dict[str, Any]], None], expected: str
) -> None:
    body = copy.deepcopy(load(fixture))
    change(body)
    error = reason(json.dumps(body))
    assert str(error) == f"Integration webhook: {expected}"
    assert error.kind == "integration_webhook"


def test_an_unknown_action_is_accepted_and_reported() -> None:
    parsed = parse_body(json.dumps({"Action": "IntegrationRenamed", "Data": {}}))
    assert parsed.unknown == ("IntegrationRenamed",)
    assert parsed.integration is not None
    assert parsed.integration.integration_id is None  # nothing to apply it to


def test_an_unknown_action_naming_its_integration_can_be_applied() -> None:
    body = {"Action": "IntegrationRenamed", "Data": {"Integration": {"Id": INTEGRATION_ID}}}
    event = parse_body(json.dumps(body)).integration
    assert event is not None
    assert (event.known, event.integration_id) == (False, INTEGRATION_ID)
