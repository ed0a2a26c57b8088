"""The simulator in-process (tests, demo, benchmarks): served on a free port in a thread."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import httpx

from shared.netserve import serve_in_thread
from shared.simulator.data import SimData
from shared.simulator.server import SimulatorApp, SimulatorConfig
from shared.simulator.tenants import Property, build_tenants

Selector = int | str | None  # a property's index, one of its enterprise ids, or "all"


class Simulator:
    """A running simulator: its URLs, its data, its properties and its admin controls."""

    def __init__(self, app: SimulatorApp, url: str, ws_url: str) -> None:
        self.app = app
        self.url = url
        self.ws_url = ws_url

    @property
    def data(self) -> SimData:
        """Property 0's data."""
        return self.app.data

    @property
    def properties(self) -> list[Property]:
        """Every property as it is now (a rotated token shows its new value), the portfolio
        last."""
        return [tenant.info() for tenant in self.app.tenants]

    def data_of(self, index: int) -> SimData:
        return self.app.tenants[index].data

    def stats(self) -> dict[str, Any]:
        return dict(self._admin("GET", "/_admin/stats"))

    def reset_stats(self) -> dict[str, Any]:
        return dict(self._admin("POST", "/_admin/stats/reset"))

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        return dict(self._admin("POST", "/_admin/faults", faults))

    def mutate(self, *, target: Selector = None, **counts: int) -> dict[str, list[str]]:
        """Staff at work on property 0, or on ``target`` (index, enterprise id, "all")."""
        body: dict[str, Any] = dict(counts)
        if target is not None:
            body["property"] = target
        return dict(self._admin("POST", "/_admin/mutate", body))

    def integration_webhook(
        self, action: str = "IntegrationCreated", *, target: Selector = 0, url: str | None = None
    ) -> dict[str, Any]:
        """Apply an Integration Webhook's action to one property (IntegrationApiKeyCreated
        rotates its token, IntegrationDisabled makes it answer 401) and POST it to ``url``
        (default: the General Webhook URL). Returns the receiver's ``status`` (None when
        unreachable, with ``error``), the ``message`` sent and the ``property`` after it."""
        body: dict[str, Any] = {"action": action, "property": target}
        if url is not None:
            body["url"] = url
        return dict(self._admin("POST", "/_admin/integration", body))

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
    app = SimulatorApp(config, build_tenants(config))
    with serve_in_thread(app.asgi(), port=port) as server:
        yield Simulator(app, server.http_url, server.ws_url + "/ws/connector")
