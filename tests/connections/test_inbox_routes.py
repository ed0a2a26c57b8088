"""The routes a connection's drain claims (the scheduled process_events and the real-time
worker alike): one enterprise, one route with the connection's own events (a change announced by
a webhook and the WebSocket is claimed and read once); a portfolio, each enterprise's events by
its own engine, then the connection's own across its enterprises."""

from __future__ import annotations

from typing import Any, cast

from pydantic import SecretStr

from shared.connections.jobs import AcrossEnterprises, inbox_routes
from shared.connections.model import Connection
from shared.sync.engine import SyncEngine
from shared.sync.events import Route

CONNECTION = "6f1c1e0a-0000-4000-8000-000000000001"
ENTERPRISES = ("e0000000-0000-4000-8000-00000000000a", "e0000000-0000-4000-8000-00000000000b")


def engines(n: int) -> list[SyncEngine]:
    return [cast(SyncEngine, object()) for _ in range(n)]


def connection(*enterprise_ids: str, portfolio: bool = False) -> Connection:
    return Connection(
        id=CONNECTION,
        access_token=SecretStr("token"),
        enterprise_ids=enterprise_ids,
        is_portfolio=portfolio,
    )


def test_one_enterprise_is_one_route_with_the_connections_own_events() -> None:
    (engine,) = engines(1)
    ((refresher, route),) = inbox_routes(connection(ENTERPRISES[0]), [engine])
    assert route == Route((ENTERPRISES[0],), CONNECTION)
    assert isinstance(refresher, AcrossEnterprises)
    assert refresher.engines == [engine]


def test_a_portfolio_drains_each_enterprise_then_its_own_events() -> None:
    first, second = engines(2)
    routes: list[tuple[Any, Route]] = inbox_routes(
        connection(*ENTERPRISES, portfolio=True), [first, second]
    )
    assert [route for _, route in routes] == [
        Route((ENTERPRISES[0],)),
        Route((ENTERPRISES[1],)),
        Route(ENTERPRISES, CONNECTION),
    ]
    assert [refresher for refresher, _ in routes[:2]] == [first, second]
    assert isinstance(routes[2][0], AcrossEnterprises)
