"""The error tree: every documented status maps to its own class; Retry-After; no secrets."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.mews import errors
from shared.mews.errors import (
    STATUS_ERRORS,
    MewsAuthError,
    MewsBadRequestError,
    MewsBusinessRuleError,
    MewsConflictError,
    MewsFatalError,
    MewsRateLimitedError,
    MewsRetriableError,
    MewsServerError,
    MewsTimeoutError,
    error_class,
    error_from_response,
    parse_retry_after,
)
from shared.settings import DEMO_ACCESS_TOKEN
from tests.support.fixtures import load

MEWS_MD = Path(__file__).resolve().parents[2] / "docs" / "MEWS.md"
# docs/MEWS.md#errors, the status table
DOCUMENTED_ERROR_STATUSES = {400, 401, 403, 404, 408, 409, 413, 429, 500}


def test_every_documented_status_has_its_own_class() -> None:
    assert set(STATUS_ERRORS) == DOCUMENTED_ERROR_STATUSES
    classes = list(STATUS_ERRORS.values())
    assert len(set(classes)) == len(classes)


def test_the_status_table_in_docs_is_fully_mapped() -> None:
    section = MEWS_MD.read_text(encoding="utf-8").split('<a id="errors"></a>', 1)[1]
    section = section.split("<a id=", 1)[0]
    statuses = {int(s) for s in re.findall(r"^\| (\d{3})\b", section, flags=re.MULTILINE)}
    assert statuses == DOCUMENTED_ERROR_STATUSES


@pytest.mark.parametrize(
    ("status", "kind", "retriable"),
    [
        (400, MewsFatalError, False),
        (401, MewsAuthError, False),
        (403, MewsBusinessRuleError, False),
        (404, MewsFatalError, False),
        (408, MewsTimeoutError, True),
        (409, MewsConflictError, False),
        (413, MewsFatalError, False),
        (429, MewsRateLimitedError, True),
        (500, MewsServerError, True),
        (502, MewsServerError, True),
        (503, MewsServerError, True),
        (418, MewsFatalError, False),
    ],
)
def test_status_decides_the_kind(status: int, kind: type[Exception], retriable: bool) -> None:
    cls = error_class(status)
    assert issubclass(cls, kind)
    assert issubclass(cls, MewsRetriableError) is retriable


def test_an_error_body_keeps_message_and_request_id() -> None:
    body = load("error_400")
    error = error_from_response("customers/getAll", 400, _dumps(body), {})
    assert isinstance(error, MewsBadRequestError)
    assert error.message == "Invalid CustomerIds."
    assert error.request_id == body["RequestId"]
    assert body["RequestId"] in str(error)


def test_the_429_fixture_gives_retry_after_and_the_request_id() -> None:
    fixture = load("error_429")
    headers = {k.lower(): v for k, v in fixture["Headers"].items()}
    error = error_from_response("customers/getAll", 429, _dumps(fixture["Body"]), headers)
    assert isinstance(error, MewsRateLimitedError)
    assert error.retry_after == 12
    assert error.request_id == fixture["Headers"]["Request-Id"]
    assert error.run_outcome == "rate_limited"


def test_a_body_that_is_not_json_still_gives_a_typed_error() -> None:
    error = error_from_response("x/y", 502, b"<html>bad gateway</html>", {"request-id": "r1"})
    assert isinstance(error, MewsServerError)
    assert error.request_id == "r1"


def test_tokens_never_reach_the_message() -> None:
    body = _dumps({"Message": f"Invalid AccessToken {DEMO_ACCESS_TOKEN}"})
    error = error_from_response("configuration/get", 401, body, {})
    assert DEMO_ACCESS_TOKEN not in str(error)


@pytest.mark.parametrize(
    ("header", "expected"),
    [("12", 12.0), ("0", 0.0), ("1.5", 1.5), ("", None), (None, None), ("soon", None), ("-3", 0.0)],
)
def test_retry_after_seconds(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_retry_after_http_date() -> None:
    now = datetime(2026, 3, 15, 10, 30, 0, tzinfo=UTC)
    assert parse_retry_after("Sun, 15 Mar 2026 10:30:20 GMT", now=now) == 20.0


def _dumps(data: object) -> bytes:
    import json

    return json.dumps(data).encode()


def test_module_exports_are_exceptions() -> None:
    for cls in STATUS_ERRORS.values():
        assert issubclass(cls, errors.MewsError)
