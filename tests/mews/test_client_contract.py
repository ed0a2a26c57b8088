"""Contract tests: the client sends exactly the documented request shapes and reads exactly the
documented response shapes (the fixtures), and maps every documented status.

respx runs with ``assert_all_called``: a route the client never hit fails the test.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr

from shared.mews.client import MewsClient, Page, RetryPolicy
from shared.mews.errors import (
    STATUS_ERRORS,
    MewsAuthError,
    MewsBusinessRuleError,
    MewsError,
    MewsNetworkError,
    MewsRateLimitedError,
    MewsServerError,
)
from shared.mews.paging import PagingError
from shared.mews.ratelimit import Slot
from tests.support.fixtures import FIXTURES, load, request_body

BASE = "https://api.mews-demo.example"
API = BASE + "/api/connector/v1/"
TOKENS = load("customers_getAll_request")
pytestmark = pytest.mark.anyio


class RecordingLimiter:
    def __init__(self) -> None:
        self.acquired = 0
        self.pauses: list[float] = []
        self.unauthorized: list[str] = []

    async def acquire(self) -> Slot:
        self.acquired += 1
        return Slot()

    async def answered(self, slot: Slot) -> None:
        raise AssertionError("no slot had a ticket")

    async def pause(self, seconds: float, slot: Slot | None = None) -> None:
        self.pauses.append(seconds)

    async def mark_unauthorized(self, error: str) -> None:
        self.unauthorized.append(error)


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def limiter() -> RecordingLimiter:
    return RecordingLimiter()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client(http: httpx.AsyncClient, limiter: RecordingLimiter, sleeps: Sleeps) -> MewsClient:
    return MewsClient(
        http,
        platform_url=BASE,
        client_token=SecretStr(TOKENS["ClientToken"]),
        access_token=SecretStr(TOKENS["AccessToken"]),
        client_name=TOKENS["Client"],
        limiter=limiter,
        retry=RetryPolicy(max_attempts=4, base_delay=0.5, max_delay=30),
        sleep=sleeps,
    )


def sent(route: respx.Route, index: int = -1) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(route.calls[index].request.content)
    return body


async def collect(pages: AsyncIterator[Page[Any]]) -> list[Page[Any]]:
    return [page async for page in pages]


def respond(name: str, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=load(name), headers={"Request-Id": "req-1"})


# -- every operation: the exact request, the parsed response ----------------------------------


async def test_configuration_get(client: MewsClient) -> None:
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(API + "configuration/get").mock(
            return_value=respond("configuration_get_response")
        )
        config = await client.configuration()
    assert sent(route) == load("configuration_get_request")
    assert route.calls[0].request.headers["content-type"] == "application/json"
    assert config.enterprise.chain_id == "c1c1c1c1-0000-4000-8000-000000000001"
    assert config.enterprise.time_zone_identifier == "Europe/London"


async def test_customers_by_updated_window(client: MewsClient) -> None:
    expected = load("customers_getAll_request")
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(API + "customers/getAll").mock(
            return_value=respond("customers_getAll_response")
        )
        pages = await collect(
            client.customers(updated_utc=expected["UpdatedUtc"], with_addresses=True, count=100)
        )
    assert sent(route) == expected
    customers = pages[0].items
    assert len(customers) == len(load("customers_getAll_response")["Customers"])
    assert pages[0].rejected == []
    amelia = customers[0]
    assert amelia.last_name == "Sampleton"
    assert amelia.birth_date == date(1984, 3, 14)
    assert pages[0].raws[0] == load("customers_getAll_response")["Customers"][0]
    merged = [c for c in customers if c.merge_target_id]
    assert merged
    assert not merged[0].is_active


async def test_customers_by_ids_sends_both_activity_states(client: MewsClient) -> None:
    # the fixture leaves ActivityStates out; its default is undocumented, so we always send it
    # (a deleted customer fetched after a webhook must come back)
    expected = {**load("customers_getAll_byIds_request"), "ActivityStates": ["Active", "Deleted"]}
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(API + "customers/getAll").mock(
            return_value=httpx.Response(200, json={"Customers": [], "Cursor": None})
        )
        await collect(client.customers(customer_ids=expected["CustomerIds"]))
    assert sent(route) == expected


async def test_customers_deleted_sweep(client: MewsClient) -> None:
    expected = load("customers_getAll_deleted_request")
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(API + "customers/getAll").mock(
            return_value=httpx.Response(200, json={"Customers": [], "Cursor": None})
        )
        await collect(
            client.customers(deleted_utc=expected["DeletedUtc"], activity_states=["Deleted"])
        )
    assert sent(route) == expected


async def test_customers_add(client: MewsClient) -> None:
    expected = load("customers_add_request")
    fields = {
        k: v for k, v in request_body("customers_add_request").items() if k != "OverwriteExisting"
    }
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(API + "customers/add").mock(
            return_value=respond("customers_add_response")
        )
        customer = await client.add_customer(
            fields, overwrite_existing=expected["OverwriteExisting"]
        )
    assert sent(route) == expected
    assert customer.id.startswith("cccc0007")


async def test_customers_update(client: MewsClient) -> None:
    expected = load("customers_update_request")
    fields = {
        k: v for k, v in request_body("customers_update_request").items() if k != "CustomerId"
    }
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(API + "customers/update").mock(
            return_value=respond("customers_update_response")
        )
        customer = await client.update_customer(expected["CustomerId"], fields)
    assert sent(route) == expected
    assert customer.updated_utc.isoformat() == "2026-03-15T10:32:41+00:00"


async def test_accounts_update(client: MewsClient) -> None:
    expected = load("accounts_update_request")
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(API + "accounts/update").mock(
            return_value=respond("accounts_update_response")
        )
        answer = await client.update_accounts(expected["AccountUpdates"])
    assert sent(route) == expected
    assert answer["Accounts"][0]["Id"] == expected["AccountUpdates"][0]["Id"]


async def test_addresses(client: MewsClient) -> None:
    expected = load("addresses_getAll_request")
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(API + "addresses/getAll").mock(
            return_value=respond("addresses_getAll_response")
        )
        pages = await collect(
            client.addresses(account_ids=expected["AccountIds"], activity_states=["Active"])
        )
    assert sent(route) == expected
    fractional = [a for a in pages[0].items if a.updated_utc and a.updated_utc.microsecond]
    assert fractional, "the fixture's fractional-second timestamp must parse"


async def test_identity_documents(client: MewsClient) -> None:
    expected = load("identityDocuments_getAll_request")
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(API + "identityDocuments/getAll").mock(
            return_value=respond("identityDocuments_getAll_response")
        )
        pages = await collect(client.identity_documents(expected["CustomerIds"]))
    assert sent(route) == expected
    assert {d.type for d in pages[0].items} == {"Passport", "IdentityCard"}
    assert pages[0].items[0].expiration_date == date(2031, 6, 30)


async def test_companies_accept_both_contact_person_spellings(client: MewsClient) -> None:
    expected = load("companies_getAll_request")
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(API + "companies/getAll").mock(
            return_value=respond("companies_getAll_response")
        )
        pages = await collect(client.companies(updated_utc=expected["UpdatedUtc"], count=100))
    assert sent(route) == expected
    companies = pages[0].items
    assert len(companies) == 3
    assert all(c.contact_person for c in companies)


async def test_reservations(client: MewsClient) -> None:
    expected = load("reservations_getAll_request")
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(API + "reservations/getAll/2023-06-06").mock(
            return_value=respond("reservations_getAll_response")
        )
        pages = await collect(
            client.reservations(
                updated_utc=expected["UpdatedUtc"], states=expected["States"], count=100
            )
        )
    assert sent(route) == expected
    assert {r.state for r in pages[0].items} == {"Started", "Canceled", "Processed", "Confirmed"}


async def test_resources(client: MewsClient) -> None:
    expected = load("resources_getAll_request")
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(API + "resources/getAll").mock(
            return_value=respond("resources_getAll_response")
        )
        pages = await collect(client.resources(include_inactive=False))
    assert sent(route) == expected
    assert {r.state for r in pages[0].items} == {"OutOfOrder", "Clean", "Inspected", "Dirty"}


# -- paging ------------------------------------------------------------------------------------


async def test_paging_follows_the_cursor_until_a_short_page(client: MewsClient) -> None:
    customers = load("customers_getAll_response")["Customers"]
    answers = [
        httpx.Response(200, json={"Customers": customers[:2], "Cursor": customers[1]["Id"]}),
        httpx.Response(200, json={"Customers": customers[2:4], "Cursor": customers[3]["Id"]}),
        httpx.Response(200, json={"Customers": customers[4:5], "Cursor": customers[4]["Id"]}),
    ]
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(API + "customers/getAll").mock(side_effect=answers)
        pages = await collect(client.customers(chain_ids=["c"], count=2))
    assert [len(p.items) for p in pages] == [2, 2, 1]
    assert "Cursor" not in sent(route, 0)["Limitation"]
    assert sent(route, 1)["Limitation"] == {"Count": 2, "Cursor": customers[1]["Id"]}
    assert sent(route, 2)["Limitation"] == {"Count": 2, "Cursor": customers[3]["Id"]}


async def test_a_204_is_an_empty_page(client: MewsClient) -> None:
    with respx.mock(assert_all_called=True) as mock:
        mock.post(API + "customers/getAll").mock(return_value=httpx.Response(204))
        pages = await collect(client.customers(chain_ids=["c"]))
    assert len(pages) == 1
    assert pages[0].items == []


async def test_a_repeated_cursor_stops_the_walk(client: MewsClient) -> None:
    customers = load("customers_getAll_response")["Customers"]
    page = {"Customers": customers[:1], "Cursor": customers[0]["Id"]}
    with respx.mock(assert_all_called=True) as mock:
        mock.post(API + "customers/getAll").mock(return_value=httpx.Response(200, json=page))
        with pytest.raises(PagingError):
            await collect(client.customers(chain_ids=["c"], count=1))


async def test_a_bad_record_is_rejected_with_its_reason_and_the_page_goes_on(
    client: MewsClient,
) -> None:
    customers = load("customers_getAll_response")["Customers"]
    broken = {**customers[1], "LastName": None, "UpdatedUtc": "not a time"}
    unknown = {**customers[2], "Classifications": ["SomethingNew"], "BrandNewField": {"x": 1}}
    body = {"Customers": [customers[0], broken, unknown], "Cursor": None}
    with respx.mock(assert_all_called=True) as mock:
        mock.post(API + "customers/getAll").mock(return_value=httpx.Response(200, json=body))
        [page] = await collect(client.customers(chain_ids=["c"]))
    assert [c.id for c in page.items] == [customers[0]["Id"], customers[2]["Id"]]
    assert page.items[1].classifications == ["SomethingNew"]
    assert page.raws == [customers[0], unknown]
    [rejected] = page.rejected
    assert rejected.record_id == customers[1]["Id"]
    assert "LastName" in rejected.reason
    assert "UpdatedUtc" in rejected.reason


async def test_birth_date_as_date_time_is_a_date(client: MewsClient) -> None:
    customer = {
        **load("customers_getAll_response")["Customers"][0],
        "BirthDate": "1984-03-14T00:00:00Z",
    }
    with respx.mock(assert_all_called=True) as mock:
        mock.post(API + "customers/getAll").mock(
            return_value=httpx.Response(200, json={"Customers": [customer], "Cursor": None})
        )
        [page] = await collect(client.customers(chain_ids=["c"]))
    assert page.items[0].birth_date == date(1984, 3, 14)


# -- statuses, retries, rate limit -------------------------------------------------------------


@pytest.mark.parametrize("status", sorted(STATUS_ERRORS))
async def test_every_documented_status_raises_its_error(
    client: MewsClient, status: int, sleeps: Sleeps
) -> None:
    body = load("error_400") | {"Message": f"status {status}"}
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(API + "configuration/get").mock(
            return_value=httpx.Response(status, json=body, headers={"Retry-After": "1"})
        )
        with pytest.raises(STATUS_ERRORS[status]) as caught:
            await client.configuration()
    error = caught.value
    assert error.status == status
    assert error.request_id == body["RequestId"]
    expected_calls = 4 if error.retriable else 1  # retried up to the cap, else once
    assert route.call_count == expected_calls


async def test_a_429_pauses_the_token_for_retry_after_then_succeeds(
    client: MewsClient, limiter: RecordingLimiter
) -> None:
    fixture = load("error_429")
    with respx.mock(assert_all_called=True) as mock:
        mock.post(API + "configuration/get").mock(
            side_effect=[
                httpx.Response(429, json=fixture["Body"], headers=fixture["Headers"]),
                respond("configuration_get_response"),
            ]
        )
        await client.configuration()
    assert limiter.pauses == [12.0]
    assert limiter.acquired == 2
    assert client.stats.rate_limited == 1


async def test_a_429_on_the_last_attempt_still_blocks_the_token_for_its_whole_retry_after(
    client: MewsClient, limiter: RecordingLimiter, sleeps: Sleeps
) -> None:
    limited = httpx.Response(
        429, json={"Message": "Too many requests."}, headers={"Retry-After": "45"}
    )
    with respx.mock(assert_all_called=True) as mock:
        mock.post(API + "configuration/get").mock(return_value=limited)
        with pytest.raises(MewsRateLimitedError):
            await client.configuration()
    # 45 s is above the retry policy's cap of 30 s: Mews' word holds, for every call
    assert limiter.pauses == [45.0] * 4
    assert sleeps.calls == []  # the calls wait in the limiter, not on their own


class TrackingLimiter(RecordingLimiter):
    """Hands out slots with tickets, as the shared limiter does once a token met a 429."""

    def __init__(self) -> None:
        super().__init__()
        self.answered_tickets: list[int | None] = []
        self.refused_tickets: list[int | None] = []

    async def acquire(self) -> Slot:
        self.acquired += 1
        return Slot(probe=self.acquired == 1, ticket=self.acquired)

    async def answered(self, slot: Slot) -> None:
        self.answered_tickets.append(slot.ticket)

    async def pause(self, seconds: float, slot: Slot | None = None) -> None:
        self.refused_tickets.append(slot.ticket if slot else None)


async def test_each_tracked_slot_hands_back_its_answer_or_its_429(
    http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    limiter = TrackingLimiter()
    client = MewsClient(
        http,
        platform_url=BASE,
        client_token=SecretStr(TOKENS["ClientToken"]),
        access_token=SecretStr(TOKENS["AccessToken"]),
        client_name=TOKENS["Client"],
        limiter=limiter,
        retry=RetryPolicy(max_attempts=4, base_delay=0.5, max_delay=30),
        sleep=sleeps,
    )
    with respx.mock(assert_all_called=True) as mock:
        mock.post(API + "configuration/get").mock(
            side_effect=[
                httpx.Response(
                    429, json={"Message": "Too many requests."}, headers={"Retry-After": "2"}
                ),
                httpx.Response(503),
                respond("configuration_get_response"),
            ]
        )
        await client.configuration()
    assert limiter.refused_tickets == [1]  # the 429 ends the probe through the block
    assert limiter.answered_tickets == [2, 3]  # a 5xx is an answer too; so is a success


async def test_without_retry_after_backoff_is_exponential_with_jitter_and_capped(
    client: MewsClient, sleeps: Sleeps
) -> None:
    with respx.mock(assert_all_called=True) as mock:
        mock.post(API + "configuration/get").mock(return_value=httpx.Response(503))
        with pytest.raises(MewsServerError):
            await client.configuration()
    assert len(sleeps.calls) == 3
    for attempt, wait in enumerate(sleeps.calls):
        assert 0 <= wait <= min(30, 0.5 * 2**attempt)


async def test_network_errors_are_retried(client: MewsClient, sleeps: Sleeps) -> None:
    with respx.mock(assert_all_called=True) as mock:
        mock.post(API + "configuration/get").mock(
            side_effect=[httpx.ConnectError("refused"), respond("configuration_get_response")]
        )
        await client.configuration()
    assert len(sleeps.calls) == 1


async def test_network_errors_give_up_after_the_cap(client: MewsClient) -> None:
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(API + "configuration/get").mock(side_effect=httpx.ReadTimeout("slow"))
        with pytest.raises(MewsNetworkError):
            await client.configuration()
    assert route.call_count == 4


async def test_auth_and_business_rule_errors_are_not_retried(client: MewsClient) -> None:
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(API + "customers/update").mock(
            return_value=httpx.Response(403, json={"Message": "E-mail already used."})
        )
        with pytest.raises(MewsBusinessRuleError, match="E-mail already used"):
            await client.update_customer("x", {"Email": "a@example.com"})
        assert route.call_count == 1
        mock.post(API + "configuration/get").mock(
            return_value=httpx.Response(401, json={"Message": "Invalid token."})
        )
        with pytest.raises(MewsAuthError):
            await client.configuration()


async def test_tokens_never_appear_in_errors_or_logs(
    client: MewsClient, capsys: pytest.CaptureFixture[str]
) -> None:
    from shared.logs import configure_logging

    configure_logging(json=True, secrets=[TOKENS["AccessToken"], TOKENS["ClientToken"]])
    echo = f"bad token {TOKENS['AccessToken']} / {TOKENS['ClientToken']}"
    with respx.mock(assert_all_called=True) as mock:
        mock.post(API + "configuration/get").mock(
            return_value=httpx.Response(401, json={"Message": echo})
        )
        with pytest.raises(MewsError) as caught:
            await client.configuration()
    out = capsys.readouterr()
    for text in (str(caught.value), out.out, out.err):
        assert TOKENS["AccessToken"] not in text
        assert TOKENS["ClientToken"] not in text


async def test_id_filters_are_bounded_before_sending(client: MewsClient) -> None:
    with pytest.raises(ValueError, match="at most 1000 CustomerIds"):
        client.customers(customer_ids=[str(i) for i in range(1001)])
    with pytest.raises(ValueError, match="at most 100 CustomerIds"):
        client.identity_documents([str(i) for i in range(101)])


def test_every_fixture_is_strict_json_used_by_a_test_and_authenticated() -> None:
    """The contract fixtures live in the repository (docs/MEWS.md#fixtures): each file is strict
    JSON, each is used by a test, and each request carries the authentication fields with
    tokens of the documented shape (docs/MEWS.md#authentication)."""
    token = re.compile(r"^[0-9A-Fa-f]{32}-[0-9A-Fa-f]{31}$")
    tests = FIXTURES.parents[1]
    sources = "\n".join(p.read_text(encoding="utf-8") for p in tests.rglob("*.py"))
    names = sorted(p.stem for p in FIXTURES.glob("*.json"))
    assert len(names) >= 30
    for name in names:
        body = json.loads(
            (FIXTURES / f"{name}.json").read_text(encoding="utf-8"), parse_constant=_not_json
        )
        assert f'"{name}"' in sources or f"{name}.json" in sources, f"{name} is used by no test"
        if name.endswith("_request"):
            assert token.match(body["ClientToken"]), name
            assert token.match(body["AccessToken"]), name
            assert body["Client"], name


def _not_json(constant: str) -> None:
    """NaN and Infinity: Python's json reads them, strict JSON (and Mews) has no such values."""
    raise ValueError(f"{constant} is not strict JSON")
