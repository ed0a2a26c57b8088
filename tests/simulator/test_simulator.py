"""The simulator over real HTTP, checked against the documentation's fixtures: what it accepts,
what it answers, how it pages, limits and fails."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import httpx
import pytest

from shared.simulator.data import generate
from shared.simulator.running import Simulator, running_simulator
from shared.simulator.server import SimulatorConfig
from shared.simulator.stats import during_retry_after
from tests.support.fixtures import load

API = "/api/connector/v1/"
TOKENS = {k: load("customers_getAll_request")[k] for k in ("ClientToken", "AccessToken", "Client")}


def post(sim: Simulator, operation: str, body: dict[str, Any], **extra: Any) -> httpx.Response:
    return httpx.post(sim.url + API + operation, json={**TOKENS, **body}, timeout=10, **extra)


def walk(
    sim: Simulator, operation: str, body: dict[str, Any], key: str, count: int
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        limitation: dict[str, Any] = {"Count": count}
        if cursor:
            limitation["Cursor"] = cursor
        answer = post(sim, operation, {**body, "Limitation": limitation})
        assert answer.status_code == 200, answer.text
        page = answer.json()
        items += page[key]
        cursor = page["Cursor"]
        if cursor is None or len(page[key]) < count:
            return items


def first_of(fixture: str, key: str) -> dict[str, Any]:
    record: dict[str, Any] = load(fixture)[key][0]
    return record


@pytest.mark.parametrize(
    ("request_fixture", "response_fixture", "operation", "key"),
    [
        ("customers_getAll_request", "customers_getAll_response", "customers/getAll", "Customers"),
        (
            "customers_getAll_byIds_request",
            "customers_getAll_response",
            "customers/getAll",
            "Customers",
        ),
        (
            "customers_getAll_deleted_request",
            "customers_getAll_response",
            "customers/getAll",
            "Customers",
        ),
        ("companies_getAll_request", "companies_getAll_response", "companies/getAll", "Companies"),
        ("addresses_getAll_request", "addresses_getAll_response", "addresses/getAll", "Addresses"),
        (
            "identityDocuments_getAll_request",
            "identityDocuments_getAll_response",
            "identityDocuments/getAll",
            "IdentityDocuments",
        ),
        (
            "reservations_getAll_request",
            "reservations_getAll_response",
            "reservations/getAll/2023-06-06",
            "Reservations",
        ),
        ("resources_getAll_request", "resources_getAll_response", "resources/getAll", "Resources"),
    ],
)
def test_documented_requests_are_accepted_and_answered_in_the_documented_shape(
    simulator: Simulator, request_fixture: str, response_fixture: str, operation: str, key: str
) -> None:
    body = load(request_fixture)
    answer = httpx.post(simulator.url + API + operation, json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Request-Id"]
    data = answer.json()
    assert set(load(response_fixture)) <= set(data) | {"Documents"}
    assert "Cursor" in data
    # the fixture's filters name fixture ids and dates; widen to the simulator's own data
    if key == "Customers":
        body = {"ChainIds": [simulator.data.chain_id], "Extent": {"Customers": True}}
    elif key == "Addresses":
        body = {"ChainIds": [simulator.data.chain_id]}
    elif key == "IdentityDocuments":
        body = {
            "CustomerIds": [d["CustomerId"] for d in list(simulator.data.documents.values())[:50]]
        }
    else:
        body = {
            k: v
            for k, v in body.items()
            if k not in ("UpdatedUtc", "ClientToken", "AccessToken", "Client")
        }
    records = walk(simulator, operation, body, key, 1000)
    assert records
    expected_keys = set(first_of(response_fixture, key))
    for record in records:
        keys = set(record)
        if key == "Companies":  # either spelling of the contact person, as documented
            keys |= {"ContactPerson", "ContacPerson"}
            expected_keys |= {"ContactPerson", "ContacPerson"}
        assert keys == expected_keys, keys ^ expected_keys


def test_configuration_has_the_documented_shape(simulator: Simulator) -> None:
    answer = post(simulator, "configuration/get", {})
    fixture = load("configuration_get_response")
    assert set(answer.json()) == set(fixture)
    assert set(answer.json()["Enterprise"]) == set(fixture["Enterprise"])


def test_writes_answer_in_the_documented_shape(simulator: Simulator) -> None:
    added = post(
        simulator,
        "customers/add",
        {
            "LastName": "Fakename",
            "FirstName": "Felix",
            "OverwriteExisting": False,
            "Email": "felix.sim@example.com",
        },
    )
    assert added.status_code == 200, added.text
    assert set(added.json()) == set(load("customers_add_response"))
    customer_id = added.json()["Id"]
    updated = post(
        simulator,
        "customers/update",
        {"CustomerId": customer_id, "Phone": "+44 20 7946 0111", "Email": ""},
    )
    assert updated.status_code == 200
    assert updated.json()["Phone"] == "+44 20 7946 0111"
    assert updated.json()["Email"] == "felix.sim@example.com", "a blank never clears"
    assert updated.json()["UpdatedUtc"] > added.json()["UpdatedUtc"]
    cleared = post(
        simulator,
        "accounts/update",
        {
            "AccountUpdates": [
                {
                    "Id": customer_id,
                    "Discriminator": "Customer",
                    "Company": None,
                    "Customer": {"Telephone": {"Value": None}, "Email": None},
                }
            ]
        },
    )
    assert cleared.status_code == 200, cleared.text
    assert set(cleared.json()["Accounts"][0]) == set(
        load("accounts_update_response")["Accounts"][0]
    )
    assert simulator.data.customers[customer_id]["Phone"] is None
    assert simulator.data.customers[customer_id]["Email"] == "felix.sim@example.com"


def test_accounts_merge_folds_sources_into_the_target_as_documented(
    simulator: Simulator,
) -> None:
    """``accounts/merge`` (docs/MEWS.md#account-merge): the request is checked whole, then each
    source is inactive with the target's id in ``MergeTargetId``; the answer is ``{}``."""
    live = [
        c["Id"]
        for c in simulator.data.customers.values()
        if c["IsActive"] and not c["MergeTargetId"]
    ]
    source, other, target, spare = live[:4]

    def merge(*items: dict[str, Any]) -> httpx.Response:
        return post(simulator, "accounts/merge", {"AccountMergeParameters": list(items)})

    def item(sources: list[Any], target_id: Any, kind: str = "Customer") -> dict[str, Any]:
        return {"SourceAccountIds": sources, "TargetAccountId": target_id, "AccountType": kind}

    for refused in (
        merge(),
        merge(*[item([spare], target)] * 11),
        merge(item([], target)),
        merge(item([spare], target, "Company")),
        merge(item([spare], "not-an-id")),
        merge(item([target], target)),
        merge(item([spare], target), item(["not-an-id"], target)),
    ):
        assert refused.status_code == 400, refused.text
    assert simulator.data.customers[spare]["IsActive"], "a refused request merges nothing"
    before = simulator.data.customers[source]["UpdatedUtc"]
    answer = merge(item([source, other], target))
    assert (answer.status_code, answer.json()) == (200, {})
    for merged_id in (source, other):
        merged = simulator.data.customers[merged_id]
        assert (merged["IsActive"], merged["MergeTargetId"]) == (False, target)
    assert simulator.data.customers[source]["UpdatedUtc"] > before
    assert simulator.data.customers[target]["IsActive"]
    # a merged-away profile is neither merged again nor a target
    assert merge(item([source], spare)).status_code == 400
    assert merge(item([spare], source)).status_code == 400


def test_a_taken_email_is_a_business_rule_refusal(simulator: Simulator) -> None:
    taken = next(
        c
        for c in simulator.data.customers.values()
        if c["Email"] and c["IsActive"] and "@" in c["Email"]
    )
    other = next(
        c for c in simulator.data.customers.values() if c["IsActive"] and c["Id"] != taken["Id"]
    )
    answer = post(
        simulator, "customers/update", {"CustomerId": other["Id"], "Email": taken["Email"]}
    )
    assert answer.status_code == 403
    assert set(answer.json()) == set(load("error_400"))


@pytest.mark.parametrize(
    ("operation", "body", "status", "message"),
    [
        ("customers/getAll", {"Limitation": {"Count": 10}}, 400, "one of"),
        ("customers/getAll", {"ChainIds": ["x"], "Limitation": {"Count": 0}}, 400, "Count"),
        ("customers/getAll", {"ChainIds": ["x"], "Limitation": {"Count": 1001}}, 400, "Count"),
        ("customers/getAll", {"ChainIds": ["x"]}, 400, "Limitation"),
        (
            "customers/getAll",
            {"CustomerIds": ["x"] * 1001, "Limitation": {"Count": 1}},
            400,
            "at most 1000",
        ),
        (
            "customers/getAll",
            {"CompanyIds": ["a", "b"], "Limitation": {"Count": 1}},
            400,
            "at most 1",
        ),
        (
            "customers/getAll",
            {
                "UpdatedUtc": {
                    "StartUtc": "2026-01-01T00:00:00Z",
                    "EndUtc": "2026-05-01T00:00:00Z",
                },
                "Limitation": {"Count": 1},
            },
            400,
            "3 months",
        ),
        ("identityDocuments/getAll", {"Limitation": {"Count": 1}}, 400, "CustomerIds"),
        (
            "identityDocuments/getAll",
            {"CustomerIds": ["x"] * 101, "Limitation": {"Count": 1}},
            400,
            "at most 100",
        ),
        (
            "reservations/getAll/2023-06-06",
            {"PartnerCompanyIds": ["x"] * 101, "Limitation": {"Count": 1}},
            400,
            "at most 100",
        ),
        ("customers/getall", {"ChainIds": ["x"], "Limitation": {"Count": 1}}, 404, "Not found"),
        ("customers/getAll/", {"ChainIds": ["x"], "Limitation": {"Count": 1}}, 404, "Not found"),
    ],
)
def test_mews_request_validation(
    simulator: Simulator, operation: str, body: dict[str, Any], status: int, message: str
) -> None:
    answer = post(simulator, operation, body)
    assert answer.status_code == status
    assert message in answer.json()["Message"]
    assert answer.json()["RequestId"] == answer.headers["Request-Id"]


def test_invalid_json_and_bad_tokens(simulator: Simulator) -> None:
    broken = httpx.post(simulator.url + API + "configuration/get", content=b'{"a": 1,}', timeout=5)
    assert broken.status_code == 400
    assert broken.json()["Message"] == "Invalid JSON"
    bad = httpx.post(
        simulator.url + API + "configuration/get", json={**TOKENS, "AccessToken": "nope"}, timeout=5
    )
    assert bad.status_code == 401
    assert httpx.get(simulator.url + API + "configuration/get", timeout=5).status_code == 404


def test_the_public_demo_tokens_are_accepted(simulator: Simulator) -> None:
    from shared.settings import DEMO_ACCESS_TOKEN, DEMO_CLIENT_TOKEN

    answer = httpx.post(
        simulator.url + API + "configuration/get",
        json={"ClientToken": DEMO_CLIENT_TOKEN, "AccessToken": DEMO_ACCESS_TOKEN, "Client": "t"},
        timeout=5,
    )
    assert answer.status_code == 200


def test_paging_walks_everything_once_newest_first(simulator: Simulator) -> None:
    body = {
        "ChainIds": [simulator.data.chain_id],
        "ActivityStates": ["Active", "Deleted"],
        "Extent": {"Customers": True},
    }
    records = walk(simulator, "customers/getAll", body, "Customers", 37)
    ids = [r["Id"] for r in records]
    assert len(ids) == len(set(ids)) == len(simulator.data.customers)
    created = [r["CreatedUtc"] for r in records]
    assert created == sorted(created, reverse=True)


def test_a_write_between_pages_is_seen_by_the_next_page(simulator: Simulator) -> None:
    """A filter set's matches are kept between its pages until the next write, not longer:
    a customer added after the first page is in the next walk of the same filters."""
    body = {"ChainIds": [simulator.data.chain_id], "ActivityStates": ["Active"]}
    first = post(simulator, "customers/getAll", {**body, "Limitation": {"Count": 5}}).json()
    added = post(simulator, "customers/add", {"LastName": "Newcomer", "OverwriteExisting": False})
    assert added.status_code == 200, added.text
    rest = walk(simulator, "customers/getAll", body, "Customers", 1000)
    assert added.json()["Id"] in {r["Id"] for r in rest}
    cursor = {**body, "Limitation": {"Count": 5, "Cursor": first["Cursor"]}}
    second = post(simulator, "customers/getAll", cursor).json()["Customers"]
    at = [r["Id"] for r in rest].index(first["Cursor"]) + 1
    assert [r["Id"] for r in second] == [r["Id"] for r in rest[at : at + 5]]


def test_time_filters_are_half_open_and_equal_bounds_mean_equality(simulator: Simulator) -> None:
    from datetime import timedelta

    from shared.simulator.data import fmt, parse

    customer = next(iter(simulator.data.customers.values()))
    moment = parse(customer["CreatedUtc"])

    def ids(start: object, end: object) -> set[str]:
        body = {
            "CreatedUtc": {"StartUtc": fmt(start), "EndUtc": fmt(end)},
            "ActivityStates": ["Active", "Deleted"],
        }  # type: ignore[arg-type]
        return {r["Id"] for r in walk(simulator, "customers/getAll", body, "Customers", 1000)}

    second = timedelta(seconds=1)
    assert customer["Id"] in ids(moment, moment)  # equality
    assert customer["Id"] in ids(moment, moment + second)  # start inclusive
    assert customer["Id"] not in ids(moment - timedelta(hours=1), moment)  # end exclusive
    assert customer["Id"] not in ids(moment + second, moment + second)


def test_deleted_customers_come_by_deleted_utc(simulator: Simulator) -> None:
    deleted_id, when = next(iter(simulator.data.deleted_utc.items()))
    body = {"DeletedUtc": {"StartUtc": when, "EndUtc": when}, "ActivityStates": ["Deleted"]}
    records = walk(simulator, "customers/getAll", body, "Customers", 1000)
    assert deleted_id in {r["Id"] for r in records}
    assert all(not r["IsActive"] for r in records)


def test_same_seed_same_data() -> None:
    first = generate(seed=11, customers=150)
    second = generate(seed=11, customers=150, now=first.now)
    assert first.customers == second.customers
    assert first.reservations == second.reservations


def test_the_data_has_the_variety_a_hotel_has() -> None:
    data = generate(seed=3, customers=2000)
    customers = list(data.customers.values())
    emails = [c["Email"] for c in customers if c["Email"]]
    assert any(c["HasOtaEmail"] for c in customers)
    assert any("@@" in e or "@" not in e for e in emails)
    assert any(not c["Phone"] for c in customers)
    assert any(any(ord(ch) > 127 for ch in c["LastName"]) for c in customers)
    assert any(c["MergeTargetId"] for c in customers)
    lowered = Counter(e.lower() for e in emails)
    assert any(n > 1 for n in lowered.values())
    assert set(Counter(r["State"] for r in data.reservations.values())) == {
        "Inquired",
        "Confirmed",
        "Started",
        "Processed",
        "Canceled",
        "Optional",
        "Requested",
    }
    assert {r["State"] for r in data.resources.values()} == {
        "Dirty",
        "Clean",
        "Inspected",
        "OutOfService",
        "OutOfOrder",
    }


def test_rate_limit_answers_429_with_retry_after_and_stats_count_it() -> None:
    config = SimulatorConfig(customers=20, rate_limit=5, rate_window_seconds=30)
    with running_simulator(config) as sim:
        statuses = [post(sim, "configuration/get", {}) for _ in range(7)]
        assert [r.status_code for r in statuses] == [200] * 5 + [429] * 2
        limited = statuses[-1]
        fixture = load("error_429")
        assert set(fixture["Headers"]) <= set(limited.headers.keys()) | {
            "Content-Type",
            "Request-Id",
            "Retry-After",
        }
        assert 1 <= int(limited.headers["Retry-After"]) <= 30
        assert set(fixture["Body"]) <= set(limited.json())
        stats = sim.stats()
        assert stats["rate_limited"] == 2
        assert stats["max_in_window"] == 5


def test_requests_inside_a_retry_after_are_counted_once_per_period() -> None:
    blocks = [(1.0, 4.0), (2.0, 5.0), (10.0, 11.0)]  # the first two overlap: one period
    arrivals = [0.5, 1.0, 1.5, 3.0, 4.5, 5.0, 6.0, 10.5, 11.0]
    # 1.0 is the 429 itself and 5.0 / 11.0 the ends: on the edges, not inside
    assert during_retry_after(arrivals, blocks) == [3, 1]
    assert during_retry_after(arrivals, []) == []
    assert during_retry_after([], blocks) == [0, 0]


def test_stats_count_requests_sent_while_a_retry_after_runs() -> None:
    config = SimulatorConfig(customers=20, rate_limit=2, rate_window_seconds=30)
    with running_simulator(config) as sim:
        codes = [post(sim, "configuration/get", {}).status_code for _ in range(4)]
        assert codes == [200, 200, 429, 429]
        stats = sim.stats()
        # the second 429 arrived inside the first one's Retry-After (at least a second)
        assert stats["during_retry_after"] == 1
        assert stats["during_first_retry_after"] == 1
        (token,) = stats["per_token"].values()
        assert (token["during_retry_after"], token["rate_limited"]) == (1, 2)
        assert sim.reset_stats()["during_retry_after"] == 0


def test_injected_faults(simulator: Simulator) -> None:
    simulator.set_faults(statuses=[408, 503], storm=2, storm_retry_after=3)
    codes = [post(simulator, "configuration/get", {}) for _ in range(5)]
    assert [c.status_code for c in codes] == [429, 429, 408, 503, 200]
    assert codes[0].headers["Retry-After"] == "3"


def test_a_targeted_fault_fails_only_the_requests_it_matches_and_only_so_often(
    simulator: Simulator,
) -> None:
    window = {"StartUtc": "2020-01-01T00:00:00Z", "EndUtc": "2020-02-01T00:00:00Z"}
    other = {"StartUtc": "2020-02-01T00:00:00Z", "EndUtc": "2020-03-01T00:00:00Z"}
    target = {"operation": "customers/getAll", "matching": window["StartUtc"], "times": 2}
    simulator.set_faults(targeted=[{**target, "status": 503}])
    body = {"ChainIds": [simulator.data.chain_id], "Limitation": {"Count": 10}}
    codes = [
        post(simulator, "configuration/get", {}).status_code,
        post(simulator, "customers/getAll", {**body, "CreatedUtc": other}).status_code,
        *(
            post(simulator, "customers/getAll", {**body, "CreatedUtc": window}).status_code
            for _ in range(3)
        ),
    ]
    assert codes == [200, 200, 503, 503, 200]


def test_mutations_send_webhooks_with_ids_only_and_added_updated_pairs() -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from shared.netserve import serve_in_thread

    received: list[tuple[str, dict[str, Any]]] = []

    async def hook(request: Request) -> Response:
        received.append((request.query_params.get("Token", ""), json.loads(await request.body())))
        return Response(status_code=202)

    with serve_in_thread(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as receiver:
        config = SimulatorConfig(
            customers=50,
            rate_limit=None,
            webhook_url=receiver.http_url + "/hook?Token=s3cret",
            webhook_batch_size=4,
        )
        with running_simulator(config) as sim:
            changed = sim.mutate(customers_added=2, customers_updated=1, reservations_updated=1)
            import time

            deadline = time.monotonic() + 5
            while sum(len(b["Events"]) for _, b in received) < 7 and time.monotonic() < deadline:
                time.sleep(0.02)
    events = [e for _, body in received for e in body["Events"]]
    assert all(token == "s3cret" for token, _ in received)
    assert all(len(body["Events"]) <= 4 for _, body in received)
    assert all(set(body) == set(load("webhook_general")) for _, body in received)
    assert all(set(e["Value"]) == {"Id"} for e in events)
    for new_id in changed["customers_added"]:
        kinds = {e["Discriminator"] for e in events if e["Value"]["Id"] == new_id}
        assert kinds == {"CustomerAdded", "CustomerUpdated"}
    assert {e["Value"]["Id"] for e in events if e["Discriminator"] == "ServiceOrderUpdated"} == set(
        changed["reservations"]
    )
