"""The simulator in-process (tests, demo, benchmarks): served on a free port in a thread."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import httpx

from shared.netserve import serve_in_thread
from shared.simulator.data import SimData, generate
from shared.simulator.server import SimulatorApp, SimulatorConfig


class Simulator:
    """A running simulator: its URLs, its data, and its admin controls."""

    def __init__(self, app: SimulatorApp, url: str, ws_url: str) -> None:
        self.app = app
        self.url = url
        self.ws_url = ws_url

    @property
    def data(self) -> SimData:
        return self.app.data

    def stats(self) -> dict[str, Any]:
        return dict(self._admin("GET", "/_admin/stats"))

    def reset_stats(self) -> dict[str, Any]:
        return dict(self._admin("POST", "/_admin/stats/reset"))

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        return dict(self._admin("POST", "/_admin/faults", faults))

    def mutate(self, **counts: int) -> dict[str, list[str]]:
        return dict(self._admin("POST", "/_admin/mutate", counts))

    def set_webhook(self, url: str | None, **options: Any) -> None:
        self.app.config = replace(self.app.config, webhook_url=url, **options)

    def _admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = httpx.request(method, self.url + path, json=body, timeout=30)
        response.raise_for_status()
        return response.json()


@contextmanager
def running_simulator(
    config: SimulatorConfig | None = None, *, port: int = 0
) -> Iterator[Simulator]:
    config = config or SimulatorConfig()
    data = generate(seed=config.seed, customers=config.customers, enterprises=config.enterprises)
    app = SimulatorApp(config, data)
    with serve_in_thread(app.asgi(), port=port) as server:
        yield Simulator(app, server.http_url, server.ws_url + "/ws/connector")
