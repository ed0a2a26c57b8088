"""Connecting properties the way Mews does: Integration Webhooks from the simulator's admin
endpoint (created, new API key, disabled), and the CLI that prints what to connect by hand."""

from __future__ import annotations

import asyncio
import json
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import IO, Any

import httpx
import pytest
import websockets
from typer.testing import CliRunner

from shared.cli.simulator import app as simulator_cli
from shared.intake.events import check_integration
from shared.simulator.running import Simulator, running_simulator
from shared.simulator.server import SimulatorConfig
from tests.simulator.receiver import (
    CLIENT_TOKEN,
    WAIT_SECONDS,
    Receiver,
    call,
    customer_ids,
    receiving,
)

CONFIG = SimulatorConfig(customers=10, properties=2, portfolio_enterprises=2, rate_limit=None)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with receiving() as receiver:
        yield receiver


@pytest.fixture
def sim() -> Iterator[Simulator]:
    """A fresh simulator per test: these tests change tokens and integration states."""
    with running_simulator(CONFIG) as sim:
        yield sim


def test_integration_created_delivers_the_propertys_enterprise_and_token(
    sim: Simulator, receiver: Receiver
) -> None:
    prop = sim.properties[1]
    answer = sim.integration_webhook("IntegrationCreated", target=1, url=receiver.url + "/created")
    assert answer["status"] == 202
    received = receiver.wait_for("/created", lambda bodies: len(bodies) >= 1)[-1]
    assert received == answer["message"]
    assert received["Action"] == "IntegrationCreated"
    data = received["Data"]
    assert set(data) == {
        "Enterprise",
        "Service",
        "Requestor",
        "AccessToken",
        "CreatedUtc",
        "IsEnabled",
        "Integration",
    }
    assert data["Enterprise"] == {"Id": prop.enterprise_ids[0], "Name": prop.name}
    assert (data["AccessToken"], data["IsEnabled"], data["Requestor"]) == (
        prop.access_token,
        True,
        None,
    )
    assert data["Integration"]["Id"] == prop.integration_id
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", data["CreatedUtc"])
    event = check_integration(received)  # what our intake accepts
    assert (event.enterprise_id, event.token) == (prop.enterprise_ids[0], prop.access_token)
    assert call(sim, data["AccessToken"], "configuration/get").status_code == 200


def test_a_portfolio_is_created_with_its_dummy_enterprise(
    sim: Simulator, receiver: Receiver
) -> None:
    portfolio = sim.properties[-1]
    answer = sim.integration_webhook(target=portfolio.index, url=receiver.url + "/portfolio")
    data = answer["message"]["Data"]
    assert data["Enterprise"]["Id"] == portfolio.portfolio_enterprise_id
    assert data["AccessToken"] == portfolio.access_token
    assert data["Integration"]["Id"] == portfolio.integration_id
    assert answer["property"]["is_portfolio"] is True


@pytest.mark.anyio
async def test_a_new_api_key_replaces_the_token(sim: Simulator, receiver: Receiver) -> None:
    before = sim.properties[1]
    other = sim.properties[2]
    cookie = {"Cookie": f"ClientToken={CLIENT_TOKEN};AccessToken={before.access_token}"}
    async with websockets.connect(sim.ws_url, additional_headers=cookie) as socket:
        answer = await asyncio.to_thread(
            sim.integration_webhook,
            "IntegrationApiKeyCreated",
            target=1,
            url=receiver.url + "/rotated",
        )
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            await socket.recv()  # the old token's socket is closed at once
    new_token = answer["message"]["Data"]["ApiKey"]
    assert answer["message"]["Data"]["Integration"]["Id"] == before.integration_id
    assert new_token != before.access_token
    assert sim.properties[1].access_token == new_token
    assert call(sim, before.access_token, "configuration/get").status_code == 401
    chain = {"ChainIds": [before.chain_id]}
    assert customer_ids(sim, new_token, chain) == set(sim.data_of(1).customers)
    assert call(sim, other.access_token, "configuration/get").status_code == 200
    assert check_integration(answer["message"]).token == new_token


def test_a_disabled_integration_answers_401_until_enabled(
    sim: Simulator, receiver: Receiver
) -> None:
    token = sim.properties[2].access_token
    disabled = sim.integration_webhook("IntegrationDisabled", target=2, url=receiver.url + "/off")
    assert disabled["message"] == {
        "Action": "IntegrationDisabled",
        "Data": {"Integration": {"Id": sim.properties[2].integration_id, "Name": "Guest Data Hub"}},
    }
    refused = call(sim, token, "configuration/get")
    assert refused.status_code == 401
    assert "disabled" in refused.json()["Message"]
    assert call(sim, sim.properties[1].access_token, "configuration/get").status_code == 200
    sim.integration_webhook("IntegrationEnabled", target=2, url=receiver.url + "/on")
    assert call(sim, token, "configuration/get").status_code == 200


def test_an_unreachable_receiver_or_unknown_action_is_reported(sim: Simulator) -> None:
    unreachable = sim.integration_webhook(target=1, url="http://127.0.0.1:9/nowhere")
    assert unreachable["status"] is None
    assert unreachable["error"]
    with pytest.raises(httpx.HTTPStatusError):
        sim.integration_webhook("IntegrationExploded", target=1, url="http://127.0.0.1:9/")
    with pytest.raises(httpx.HTTPStatusError):
        sim.integration_webhook(target="all", url="http://127.0.0.1:9/")


def test_the_mutate_command_chooses_a_property(sim: Simulator) -> None:
    result = CliRunner().invoke(
        simulator_cli, ["mutate", "--url", sim.url, "--property", "1", "--customers-added", "2"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["customers_added"] == 2
    assert len(sim.data_of(1).customers) == CONFIG.customers + 2
    assert len(sim.data.customers) == CONFIG.customers


def _lines(stream: IO[str], into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)


def test_the_command_prints_what_to_connect_each_property_with() -> None:
    command = [sys.executable, "-c", "from shared.cli import main; main()", "simulator"]
    options = ["--port", "0", "--customers", "10", "--properties", "2"]
    process = subprocess.Popen(  # noqa: S603
        [*command, *options, "--portfolio-enterprises", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stderr is not None
    reader = threading.Thread(target=_lines, args=(process.stderr, lines), daemon=True)
    reader.start()
    printed: list[str] = []
    try:
        while not printed or not printed[-1].startswith("MEWS_PLATFORM_URL="):
            printed.append(lines.get(timeout=WAIT_SECONDS).strip())
        url = printed[-1].removeprefix("MEWS_PLATFORM_URL=")
        client_token = next(x for x in printed if x.startswith("ClientToken=")).split("=")[1]
        found = [_parsed(x) for x in printed if x.startswith(("property ", "portfolio "))]
        assert [f["kind"] for f in found] == ["property", "property", "portfolio"]
        for item in found:
            body: dict[str, Any] = {
                "ClientToken": client_token,
                "AccessToken": item["AccessToken"],
                "Client": "tests 1.0",
                "EnterpriseId": item["EnterpriseIds"].split(",")[-1],
            }
            answer = httpx.post(url + "/api/connector/v1/configuration/get", json=body, timeout=30)
            assert answer.status_code == 200, answer.text
            assert answer.json()["Enterprise"]["Id"] == body["EnterpriseId"]
        assert "'Simulated Grand Hotel'" in found[0]["line"]
        assert "AccessToken=C66EF7B239D24632943D115EDE9CB810-" in found[0]["line"]
        assert len(found[2]["EnterpriseIds"].split(",")) == 2
    finally:
        process.terminate()
        process.wait(timeout=30)
        reader.join(timeout=30)  # the pipe ends with the process
        process.stderr.close()


def _parsed(line: str) -> dict[str, str]:
    fields = dict(re.findall(r"(\w+)=(\S+)", line))
    return {**fields, "kind": line.split(maxsplit=1)[0], "line": line}
