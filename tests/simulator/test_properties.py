"""Several properties and a portfolio in one simulator, over real HTTP: each token answers from
its own data only, has its own rate limit, and gets its own webhooks and WebSocket events."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from dataclasses import asdict, replace
from typing import Any

import httpx
import pytest
import websockets

from shared.mews.client import MewsClient
from shared.mews.ratelimit import UnlimitedRateLimiter
from shared.settings import DEMO_ACCESS_TOKEN, load_settings
from shared.simulator.config import DEMO_NET_ACCESS_TOKEN, FIXTURE_ACCESS_TOKEN
from shared.simulator.data import generate
from shared.simulator.running import Simulator, running_simulator
from shared.simulator.server import SimulatorConfig
from shared.simulator.tenants import Property, build_tenants, token_label
from tests.simulator.receiver import CLIENT_TOKEN, Receiver, call, customer_ids, receiving

CONFIG = SimulatorConfig(customers=40, properties=3, portfolio_enterprises=2, rate_limit=None)
TOKEN_SHAPE = re.compile(r"^[0-9A-F]{32}-[0-9A-F]{31}$")


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with receiving() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def world(receiver: Receiver) -> Iterator[Simulator]:
    """Properties 0..2 and a portfolio of two enterprises; webhooks go to the receiver."""
    config = replace(CONFIG, webhook_url=receiver.url + "/general")
    with running_simulator(config) as sim:
        yield sim


def portfolio_of(sim: Simulator) -> Property:
    return next(p for p in sim.properties if p.is_portfolio)


def test_property_zero_keeps_todays_data_and_tokens(world: Simulator) -> None:
    today = generate(seed=CONFIG.seed, customers=CONFIG.customers, now=world.data.now)
    assert build_tenants(CONFIG, now=world.data.now)[0].data.customers == today.customers
    assert world.data.enterprises == today.enterprises
    assert world.properties[0].access_token == DEMO_ACCESS_TOKEN
    for token in (DEMO_ACCESS_TOKEN, DEMO_NET_ACCESS_TOKEN, FIXTURE_ACCESS_TOKEN):
        enterprise = call(world, token, "configuration/get").json()["Enterprise"]
        assert enterprise["Id"] == today.enterprises[0]["Id"]


def test_other_tokens_are_documented_shape_and_deterministic(world: Simulator) -> None:
    again = [t.info() for t in build_tenants(CONFIG, now=world.data.now)]
    assert [(p.access_token, p.integration_id, p.chain_id) for p in again] == [
        (p.access_token, p.integration_id, p.chain_id) for p in world.properties
    ]
    tokens = [p.access_token for p in world.properties[1:]]
    assert all(TOKEN_SHAPE.match(t) for t in tokens)
    assert len({p.access_token for p in world.properties}) == len(world.properties) == 4
    assert len({p.integration_id for p in world.properties}) == 4
    assert [p.is_portfolio for p in world.properties] == [False, False, False, True]
    listed = httpx.get(world.url + "/_admin/properties", timeout=30).json()
    assert listed == [
        {**asdict(p), "enterprise_ids": list(p.enterprise_ids)} for p in world.properties
    ]


def test_a_token_sees_only_its_own_customers(world: Simulator) -> None:
    chains = [p.chain_id for p in world.properties]
    for index, prop in enumerate(world.properties):
        own = set(world.data_of(index).customers)
        assert customer_ids(world, prop.access_token, {"ChainIds": chains}) == own
    first, second = world.properties[1], world.properties[2]
    theirs = list(world.data_of(2).customers)[:10]
    assert customer_ids(world, first.access_token, {"CustomerIds": theirs}) == set()
    update = call(
        world, first.access_token, "customers/update", {"CustomerId": theirs[0], "Phone": "+1"}
    )
    assert update.status_code == 400
    foreign = call(
        world, first.access_token, "configuration/get", {"EnterpriseId": second.enterprise_ids[0]}
    )
    assert foreign.status_code == 400


def test_a_single_token_describes_its_enterprise(world: Simulator) -> None:
    prop = world.properties[2]
    for body in ({}, {"EnterpriseId": prop.enterprise_ids[0]}):
        enterprise = call(world, prop.access_token, "configuration/get", body).json()["Enterprise"]
        assert (enterprise["Id"], enterprise["ChainId"]) == (prop.enterprise_ids[0], prop.chain_id)
        assert enterprise["IsPortfolio"] is False
    listed = call(world, prop.access_token, "enterprises/getAll", {"Limitation": {"Count": 10}})
    assert [e["Id"] for e in listed.json()["Enterprises"]] == list(prop.enterprise_ids)


def test_a_portfolio_token_follows_the_portfolio_rules(world: Simulator) -> None:
    portfolio = portfolio_of(world)
    token = portfolio.access_token
    dummy = call(world, token, "configuration/get").json()["Enterprise"]
    assert (dummy["Id"], dummy["IsPortfolio"]) == (portfolio.portfolio_enterprise_id, True)
    for enterprise_id in portfolio.enterprise_ids:
        answer = call(world, token, "configuration/get", {"EnterpriseId": enterprise_id})
        assert answer.json()["Enterprise"]["Id"] == enterprise_id
        assert answer.json()["Enterprise"]["IsPortfolio"] is False
    outside = world.properties[1].enterprise_ids[0]
    assert call(world, token, "configuration/get", {"EnterpriseId": outside}).status_code == 400

    pages = [call(world, token, "enterprises/getAll", {"Limitation": {"Count": 1}}).json()]
    second = {"Limitation": {"Count": 1, "Cursor": pages[0]["Cursor"]}}
    pages.append(call(world, token, "enterprises/getAll", second).json())
    listed = [e for page in pages for e in page["Enterprises"]]
    assert sorted(e["Id"] for e in listed) == sorted(portfolio.enterprise_ids)
    assert all(e["LinkedUtc"] for e in listed)
    one = {"EnterpriseIds": [portfolio.enterprise_ids[1]], "Limitation": {"Count": 10}}
    assert [
        e["Id"] for e in call(world, token, "enterprises/getAll", one).json()["Enterprises"]
    ] == [portfolio.enterprise_ids[1]]

    by_ids = {"CustomerIds": ["x"], "Extent": {"Customers": True}, "Limitation": {"Count": 10}}
    refused = call(world, token, "customers/getAll", by_ids)
    assert refused.status_code == 400
    assert "ChainIds is required" in refused.json()["Message"]
    own = set(world.data_of(portfolio.index).customers)
    assert customer_ids(world, token, {"ChainIds": [portfolio.chain_id]}) == own


def test_portfolio_writes_name_the_chain(world: Simulator) -> None:
    portfolio = portfolio_of(world)
    guest = {"LastName": "Portfolio", "OverwriteExisting": False}
    missing = call(world, portfolio.access_token, "customers/add", guest)
    assert missing.status_code == 400
    assert "ChainId is required" in missing.json()["Message"]
    wrong = {**guest, "ChainId": world.properties[1].chain_id}
    assert call(world, portfolio.access_token, "customers/add", wrong).status_code == 400
    added = call(
        world, portfolio.access_token, "customers/add", {**guest, "ChainId": portfolio.chain_id}
    )
    assert added.status_code == 200, added.text
    customer_id = added.json()["Id"]
    assert customer_id in world.data_of(portfolio.index).customers
    update = {"CustomerId": customer_id, "Phone": "+44 20 7946 0999"}
    assert call(world, portfolio.access_token, "customers/update", update).status_code == 400
    update["ChainId"] = portfolio.chain_id
    assert call(world, portfolio.access_token, "customers/update", update).status_code == 200
    accounts: dict[str, Any] = {
        "AccountUpdates": [
            {"Id": customer_id, "Discriminator": "Customer", "Customer": {"Notes": {"Value": "n"}}}
        ]
    }
    assert call(world, portfolio.access_token, "accounts/update", accounts).status_code == 400
    accounts["ChainId"] = portfolio.chain_id
    assert call(world, portfolio.access_token, "accounts/update", accounts).status_code == 200
    chains = {"ChainIds": [p.chain_id for p in world.properties]}
    assert customer_id not in customer_ids(world, world.properties[1].access_token, chains)


@pytest.mark.anyio
async def test_the_client_reads_a_portfolio(world: Simulator) -> None:
    portfolio = portfolio_of(world)
    settings = load_settings(mews_platform_url=world.url, mews_access_token=portfolio.access_token)
    async with httpx.AsyncClient() as http:
        client = MewsClient.from_settings(settings, http, UnlimitedRateLimiter())
        configuration = await client.configuration()
        listed = [e async for page in client.enterprises() for e in page.items]
        chosen = await client.configuration(portfolio.enterprise_ids[0])
    assert configuration.enterprise.is_portfolio
    assert sorted(e.id for e in listed) == sorted(portfolio.enterprise_ids)
    assert not any(e.is_portfolio for e in listed)
    assert chosen.enterprise.id == portfolio.enterprise_ids[0]


def test_each_token_has_its_own_rate_limit_and_stats() -> None:
    config = SimulatorConfig(customers=5, properties=2, rate_limit=3, rate_window_seconds=30)
    with running_simulator(config) as sim:
        first, second = (p.access_token for p in sim.properties)
        spent = [call(sim, first, "configuration/get").status_code for _ in range(4)]
        assert spent == [200, 200, 200, 429]
        assert [call(sim, second, "configuration/get").status_code for _ in range(3)] == [200] * 3
        assert call(sim, DEMO_NET_ACCESS_TOKEN, "configuration/get").status_code == 200
        stats = sim.stats()
    assert (stats["requests"], stats["rate_limited"], stats["max_in_window"]) == (7, 1, 3)
    per_token = stats["per_token"]
    assert per_token[token_label(first)] == {
        "property": "Simulated Grand Hotel",
        "requests": 3,
        "rate_limited": 1,
        "max_in_window": 3,
        "during_retry_after": 0,
        "during_first_retry_after": 0,
    }
    assert per_token[token_label(second)] == {
        "property": "Simulated Hotel 2",
        "requests": 3,
        "rate_limited": 0,
        "max_in_window": 3,
        "during_retry_after": 0,
        "during_first_retry_after": 0,
    }
    assert per_token[token_label(DEMO_NET_ACCESS_TOKEN)]["requests"] == 1
    assert first not in json.dumps(stats)
    assert second not in json.dumps(stats)


def expected_envelopes(sim: Simulator, index: int, changed: dict[str, list[str]]) -> dict[str, Any]:
    """Event id → (EnterpriseId, IntegrationId) its message must carry."""
    prop = sim.properties[index]
    data = sim.data_of(index)
    first = prop.enterprise_ids[0]
    expected = dict.fromkeys(changed["customers_added"], (first, prop.integration_id))
    expected |= dict.fromkeys(changed["customers_updated"], (first, prop.integration_id))
    for i in changed["reservations"]:
        enterprise = (
            data.services[data.reservations[i]["ServiceId"]] if prop.is_portfolio else first
        )
        expected[i] = (enterprise, prop.integration_id)
    for i in changed["resources"]:
        enterprise = data.resources[i]["EnterpriseId"] if prop.is_portfolio else first
        expected[i] = (enterprise, prop.integration_id)
    return expected


def test_webhooks_carry_each_propertys_enterprise_and_integration(
    world: Simulator, receiver: Receiver
) -> None:
    counts = {"customers_added": 1, "customers_updated": 2, "reservations_updated": 6}
    expected: dict[str, Any] = {}
    for index in range(len(world.properties)):
        changed = world.mutate(target=index, resources_updated=20, **counts)
        expected |= expected_envelopes(world, index, changed)
    written = world.properties[1]
    customer_id = next(c["Id"] for c in world.data_of(1).customers.values() if c["IsActive"])
    update = {"CustomerId": customer_id, "Notes": "via the API"}
    assert call(world, written.access_token, "customers/update", update).status_code == 200
    expected[customer_id] = (written.enterprise_ids[0], written.integration_id)

    def arrived(bodies: list[dict[str, Any]]) -> bool:
        return set(expected) <= {e["Value"]["Id"] for b in bodies for e in b["Events"]}

    messages = receiver.wait_for("/general", arrived)
    for message in messages:
        for event in message["Events"]:
            if event["Value"]["Id"] in expected:
                envelope = (message["EnterpriseId"], message["IntegrationId"])
                assert envelope == expected[event["Value"]["Id"]], event
    portfolio = portfolio_of(world)
    seen = {m["EnterpriseId"] for m in messages if m["IntegrationId"] == portfolio.integration_id}
    assert seen == set(portfolio.enterprise_ids), "20 of the 80 rooms of 2 hotels changed"


def test_mutate_selects_property_zero_by_default_an_enterprise_or_all(world: Simulator) -> None:
    default = world.mutate(customers_added=1)
    assert default["customers_added"][0] in world.data.customers
    portfolio = portfolio_of(world)
    by_enterprise = world.mutate(target=portfolio.enterprise_ids[1], customers_added=1)
    assert by_enterprise["customers_added"][0] in world.data_of(portfolio.index).customers
    everywhere = world.mutate(target="all", customers_added=1)["customers_added"]
    assert all(
        any(i in world.data_of(p.index).customers for i in everywhere) for p in world.properties
    )
    assert len(everywhere) == len(world.properties)
    with pytest.raises(httpx.HTTPStatusError):
        world.mutate(target=99, customers_added=1)


def cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"ClientToken={CLIENT_TOKEN};AccessToken={token}"}


async def next_ids(socket: Any) -> set[str]:
    frame = json.loads(await asyncio.wait_for(socket.recv(), 30))
    return {e["Id"] for e in frame["Events"]}


@pytest.mark.anyio
async def test_a_socket_receives_only_its_tokens_enterprises(world: Simulator) -> None:
    single, portfolio = world.properties[1], portfolio_of(world)

    async def mutate(index: int) -> set[str]:
        changed = await asyncio.to_thread(
            world.mutate, target=index, reservations_updated=2, resources_updated=1
        )
        return set(changed["reservations"]) | set(changed["resources"])

    async with (
        websockets.connect(world.ws_url, additional_headers=cookie(single.access_token)) as one,
        websockets.connect(world.ws_url, additional_headers=cookie(portfolio.access_token)) as many,
    ):
        first_single = await mutate(single.index)
        first_portfolio = await mutate(portfolio.index)
        await mutate(2)  # nobody here listens to property 2
        second_single = await mutate(single.index)
        # frames arrive in order: a foreign event would come before the expected one
        assert await next_ids(one) == first_single
        assert await next_ids(many) == first_portfolio
        assert await next_ids(one) == second_single
