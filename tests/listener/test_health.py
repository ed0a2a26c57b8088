"""The health verdict: one entry per connection; 503 only for a socket down too long."""

from __future__ import annotations

import json
from typing import Any

from shared.connections.model import Connection
from shared.listener.health import health_report
from shared.listener.state import ListenerState
from shared.listener.supervisor import RegistryState
from tests.listener.support import BAD_TOKEN, GOOD_TOKENS, connection

NOW = 1000.0
A = connection("Hotel A", GOOD_TOKENS[0], "00000000-0000-0000-0000-00000000000a")
B = connection("Hotel B", BAD_TOKEN, "00000000-0000-0000-0000-00000000000b")


def connected(**counts: int) -> ListenerState:
    state = ListenerState(connected=True, disconnected_since=None, connects=1)
    for key, value in counts.items():
        setattr(state, key, value)
    return state


def down_since(seconds_ago: float, *, refused: bool = False) -> ListenerState:
    state = ListenerState(disconnected_since=NOW - seconds_ago)
    if refused:
        state.unauthorized_since = NOW - seconds_ago
        state.last_error = "upgrade refused: HTTP 403"
    return state


def report(*pairs: tuple[Connection, ListenerState]) -> tuple[int, dict[str, Any]]:
    return health_report(
        pairs,
        RegistryState(refreshes=1, last_refresh_at=NOW - 5),
        max_disconnected_seconds=300,
        now=NOW,
    )


def test_no_connections_is_healthy() -> None:
    code, body = report()
    assert (code, body["status"], body["connections"], body["connected"]) == (200, "ok", [], False)


def test_every_socket_connected_is_ok_and_totals_add_up() -> None:
    code, body = report((A, connected(frames=2, stored=2)), (B, connected(frames=3, stored=1)))
    assert (code, body["status"]) == (200, "ok")
    assert (body["connected"], body["frames"], body["stored"], body["connects"]) == (True, 5, 3, 2)
    assert [c["label"] for c in body["connections"]] == ["Hotel A", "Hotel B"]


def test_a_refused_token_is_shown_but_never_makes_the_process_unhealthy() -> None:
    code, body = report((A, connected()), (B, down_since(3600, refused=True)))
    assert (code, body["status"], body["connected"]) == (200, "degraded", False)
    entry = body["connections"][1]
    assert (entry["id"], entry["status"], entry["healthy"]) == (B.id, "unauthorized", True)
    assert entry["disconnected_seconds"] == 3600
    assert entry["last_error"] == "upgrade refused: HTTP 403"


def test_a_socket_down_longer_than_allowed_answers_503_and_names_it() -> None:
    code, body = report((A, connected()), (B, down_since(301)))
    assert (code, body["status"]) == (503, "unhealthy")
    assert [(c["label"], c["healthy"]) for c in body["connections"]] == [
        ("Hotel A", True),
        ("Hotel B", False),
    ]


def test_a_socket_reconnecting_within_the_limit_is_degraded_not_unhealthy() -> None:
    code, body = report((A, connected()), (B, down_since(30)))
    assert (code, body["status"]) == (200, "degraded")


def test_a_failing_database_degrades_a_connected_socket() -> None:
    code, body = report((A, connected(store_errors=2)), (B, connected()))
    body_a = body["connections"][0]
    assert (code, body_a["status"]) == (200, "connected")
    failing = connected()
    failing.store_ok = False
    code, body = report((A, failing))
    assert (code, body["status"], body["store_ok"]) == (200, "degraded", False)
    assert body["connections"][0]["status"] == "degraded"


def test_the_health_never_shows_a_token() -> None:
    _, body = report((A, connected()), (B, down_since(10, refused=True)))
    text = json.dumps(body)
    assert GOOD_TOKENS[0] not in text
    assert BAD_TOKEN not in text
