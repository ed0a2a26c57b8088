from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.simulator.running import Simulator, running_simulator
from shared.simulator.server import SimulatorConfig


@pytest.fixture(scope="module")
def simulator() -> Iterator[Simulator]:
    """A small simulator (no latency) shared by a module; tests reset what they change."""
    with running_simulator(SimulatorConfig(customers=300, enterprises=2, rate_limit=None)) as sim:
        yield sim
