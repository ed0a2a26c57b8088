"""A simulator for the listener tests (its default tokens all serve one property)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.simulator.running import Simulator, running_simulator
from shared.simulator.server import SimulatorConfig


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    with running_simulator(SimulatorConfig(customers=100, rate_limit=None)) as sim:
        yield sim


@pytest.fixture
def websocket_url(simulator: Simulator) -> str:
    """The address as configured (MEWS_WEBSOCKET_URL: without /ws/connector)."""
    return simulator.ws_url.removesuffix("/ws/connector")
