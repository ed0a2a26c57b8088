"""The simulator's HTTP and WebSocket server (Starlette), its limits, latency and faults.

Routes:
- ``POST /api/connector/v1/<operation>`` — the Connector API operations we use.
- ``WS /ws/connector`` — cookie-authenticated WebSocket events (reservations, resources).
- ``/_admin/faults``, ``/_admin/stats``, ``/_admin/stats/reset``, ``/_admin/mutate`` — control.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field
from http.cookies import SimpleCookie
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from shared.settings import DEMO_ACCESS_TOKEN, DEMO_CLIENT_TOKEN
from shared.simulator.data import SimData, _Ids
from shared.simulator.queries import READS, RequestError, run_read
from shared.simulator.writes import Clock, add_customer, mutate, update_accounts, update_customer

FIXTURE_CLIENT_TOKEN = "0FA4E0C11E470000000000000000C0DE-000000000000000000000000000C11E"  # noqa: S105
FIXTURE_ACCESS_TOKEN = "0FA4EACCE5500000000000000000C0DE-000000000000000000000000000ACCE"  # noqa: S105
DEMO_NET_ACCESS_TOKEN = "4D6C7ABE0E6A4681B0AFB16900AE5D86-DF50CBC89E1D4FF5859DDF021649ED5"  # noqa: S105
PREFIX = "/api/connector/v1/"


@dataclass
class SimulatorConfig:
    seed: int = 7
    customers: int = 200
    enterprises: int = 1
    latency_ms: float = 0.0
    per_item_ms: float = 0.0
    rate_limit: int | None = 200  # None: no limit
    rate_window_seconds: float = 30.0
    client_tokens: tuple[str, ...] = (DEMO_CLIENT_TOKEN, FIXTURE_CLIENT_TOKEN)
    access_tokens: tuple[str, ...] = (
        DEMO_ACCESS_TOKEN,
        DEMO_NET_ACCESS_TOKEN,
        FIXTURE_ACCESS_TOKEN,
    )
    webhook_url: str | None = None  # carries the secret: ...?Token=...
    webhook_delay_seconds: float = 0.0
    webhook_batch_size: int = 100
    webhook_duplicates: bool = False  # send some events twice, and messages out of order


@dataclass
class Faults:
    """What goes wrong next. ``statuses``: answer the next requests with these codes."""

    statuses: list[int] = field(default_factory=list)
    storm: int = 0  # the next N requests get 429
    storm_retry_after: int = 1
    extra_delay_ms: float = 0.0
    refuse_websockets_until: float = 0.0  # monotonic time


class Stats:
    """Accepted requests per token (monotonic times), statuses, 429s, webhooks."""

    def __init__(self) -> None:
        self.accepted: dict[str, list[float]] = {}
        self.statuses: dict[int, int] = {}
        self.operations: dict[str, int] = {}
        self.webhooks_sent = 0
        self.webhook_events_sent = 0
        self.websocket_messages_sent = 0

    def max_in_window(self, window: float) -> int:
        best = 0
        for times in self.accepted.values():
            start = 0
            for end, moment in enumerate(times):
                while moment - times[start] >= window:
                    start += 1
                best = max(best, end - start + 1)
        return best

    def summary(self, window: float) -> dict[str, Any]:
        return {
            "requests": sum(len(t) for t in self.accepted.values()),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "rate_limited": self.statuses.get(429, 0),
            "max_in_window": self.max_in_window(window),
            "operations": dict(self.operations),
            "webhooks_sent": self.webhooks_sent,
            "webhook_events_sent": self.webhook_events_sent,
            "websocket_messages_sent": self.websocket_messages_sent,
        }


def _error(
    status: int, message: str, request_id: str, headers: dict[str, str] | None = None
) -> Response:
    body = orjson.dumps({"Message": message, "RequestId": request_id, "Details": None})
    return Response(
        body, status, {"Request-Id": request_id, **(headers or {})}, media_type="application/json"
    )


class SimulatorApp:
    """State and behaviour; :meth:`asgi` builds the Starlette app."""

    def __init__(self, config: SimulatorConfig, data: SimData) -> None:
        self.config = config
        self.data = data
        self.faults = Faults()
        self.stats = Stats()
        self.clock = Clock()
        self._rng = random.Random(config.seed + 1)  # mutations: deterministic choices
        self._new_id = _Ids(random.Random(config.seed + 2))
        self._windows: dict[str, deque[float]] = {}
        self._sockets: set[WebSocket] = set()
        self._pending_events: list[dict[str, Any]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    # -- Connector API ---------------------------------------------------------------------

    async def api(self, request: Request) -> Response:
        operation = request.path_params["operation"]
        request_id = str(uuid.uuid4())
        response = await self._api(request, operation, request_id)
        self.stats.statuses[response.status_code] = (
            self.stats.statuses.get(response.status_code, 0) + 1
        )
        return response

    async def _api(self, request: Request, operation: str, request_id: str) -> Response:
        handler = READS.get(operation)
        if request.method != "POST":
            return _error(404, "Not found.", request_id)
        if handler is None and operation not in (
            "configuration/get",
            "customers/add",
            "customers/update",
            "accounts/update",
        ):
            return _error(404, "Not found.", request_id)
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _error(400, "Invalid JSON", request_id)
        if not isinstance(body, dict):
            return _error(400, "Invalid JSON", request_id)
        if not isinstance(body.get("Client"), str):
            return _error(400, "Invalid Client.", request_id)
        token = body.get("AccessToken")
        if (
            body.get("ClientToken") not in self.config.client_tokens
            or token not in self.config.access_tokens
        ):
            return _error(401, "Invalid ClientToken or AccessToken.", request_id)
        limited = self._take_slot(str(token), request_id)
        if limited is not None:
            return limited
        self.stats.operations[operation] = self.stats.operations.get(operation, 0) + 1
        if self.faults.statuses:
            status = self.faults.statuses.pop(0)
            return _error(status, f"Injected fault {status}.", request_id)
        try:
            result = self._dispatch(operation, handler, body)
        except RequestError as exc:
            return _error(exc.status, exc.message, request_id)
        items = next((len(v) for v in result.values() if isinstance(v, list)), 0)
        delay = (
            self.config.latency_ms + self.config.per_item_ms * items + self.faults.extra_delay_ms
        )
        if delay > 0:
            await asyncio.sleep(delay / 1000)
        return Response(
            orjson.dumps(result), 200, {"Request-Id": request_id}, media_type="application/json"
        )

    def _dispatch(self, operation: str, spec: Any, body: dict[str, Any]) -> dict[str, Any]:
        if spec is not None:
            return run_read(spec, self.data, body)
        if operation == "configuration/get":
            enterprise_id = body.get("EnterpriseId")
            matches = [e for e in self.data.enterprises if enterprise_id in (None, e["Id"])]
            if not matches:
                raise RequestError(400, "Invalid EnterpriseId.")
            return {
                "NowUtc": self.clock.stamp(None),
                "Enterprise": matches[0],
                "Service": None,
                "PaymentCardStorage": None,
                "IsIdentityDocumentNumberRequired": True,
            }
        if operation == "customers/add":
            customer, created = add_customer(self.data, body, self.clock, self._new_id)
            self._notify_customers([customer["Id"]], added=created)
            return customer
        if operation == "customers/update":
            customer = update_customer(self.data, body, self.clock)
            self._notify_customers([customer["Id"]])
            return customer
        answer = update_accounts(self.data, body, self.clock)
        self._notify_customers([a["Id"] for a in answer["Accounts"]])
        return answer

    def _take_slot(self, token: str, request_id: str) -> Response | None:
        now = time.monotonic()
        if self.faults.storm > 0:
            self.faults.storm -= 1
            return _error(
                429,
                "Too many requests.",
                request_id,
                {"Retry-After": str(self.faults.storm_retry_after)},
            )
        limit = self.config.rate_limit
        window = self._windows.setdefault(token, deque())
        if limit is not None:
            while window and now - window[0] >= self.config.rate_window_seconds:
                window.popleft()
            if len(window) >= limit:
                wait = self.config.rate_window_seconds - (now - window[0])
                return _error(
                    429,
                    "Too many requests.",
                    request_id,
                    {"Retry-After": str(max(1, int(wait + 0.999)))},
                )
            window.append(now)
        self.stats.accepted.setdefault(token, []).append(now)
        return None

    # -- events out: webhooks and WebSocket -----------------------------------------------

    def _notify_customers(self, ids: list[str], *, added: bool = False) -> None:
        events = []
        for customer_id in ids:
            if added:
                events.append({"Discriminator": "CustomerAdded", "Value": {"Id": customer_id}})
            events.append({"Discriminator": "CustomerUpdated", "Value": {"Id": customer_id}})
        self._queue_webhook(events)

    def _queue_webhook(self, events: list[dict[str, Any]]) -> None:
        if not self.config.webhook_url or not events:
            return
        task = asyncio.get_running_loop().create_task(self._deliver(events))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, events: list[dict[str, Any]]) -> None:
        await asyncio.sleep(self.config.webhook_delay_seconds)
        if self.config.webhook_duplicates:
            events = events + self._rng.sample(events, max(1, len(events) // 5))
        size = self.config.webhook_batch_size
        batches = [events[i : i + size] for i in range(0, len(events), size)]
        if self.config.webhook_duplicates:
            batches.reverse()
        assert self.config.webhook_url is not None  # noqa: S101 - checked by the caller
        async with httpx.AsyncClient(timeout=5) as http:
            for batch in batches:
                message = {
                    "EnterpriseId": self.data.enterprises[0]["Id"],
                    "IntegrationId": self.data.integration_id,
                    "Events": batch,
                }
                for attempt in range(3):  # Mews re-sends after a failure
                    with contextlib.suppress(httpx.HTTPError):
                        response = await http.post(self.config.webhook_url, json=message)
                        if response.is_success:
                            self.stats.webhooks_sent += 1
                            self.stats.webhook_events_sent += len(batch)
                            break
                    await asyncio.sleep(0.2 * (attempt + 1))

    async def _broadcast(self, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        frame = orjson.dumps({"Events": events}).decode()
        for socket in list(self._sockets):
            try:
                await socket.send_text(frame)
                self.stats.websocket_messages_sent += 1
            except (WebSocketDisconnect, RuntimeError):
                self._sockets.discard(socket)

    async def websocket(self, socket: WebSocket) -> None:
        cookie = SimpleCookie()
        cookie.load(socket.headers.get("cookie", ""))
        client = cookie.get("ClientToken")
        access = cookie.get("AccessToken")
        refused = time.monotonic() < self.faults.refuse_websockets_until
        if (
            refused
            or client is None
            or access is None
            or client.value not in self.config.client_tokens
            or access.value not in self.config.access_tokens
        ):
            await socket.close(code=1008 if not refused else 1013)
            return
        await socket.accept()
        self._sockets.add(socket)
        try:
            while True:
                await socket.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            self._sockets.discard(socket)

    # -- admin -----------------------------------------------------------------------------

    async def admin_faults(self, request: Request) -> Response:
        body = orjson.loads(await request.body() or b"{}")
        self.faults.statuses.extend(int(s) for s in body.get("statuses", []))
        self.faults.storm += int(body.get("storm", 0))
        self.faults.storm_retry_after = int(
            body.get("storm_retry_after", self.faults.storm_retry_after)
        )
        if "extra_delay_ms" in body:
            self.faults.extra_delay_ms = float(body["extra_delay_ms"])
        if body.get("drop_websockets"):
            self.faults.refuse_websockets_until = time.monotonic() + float(
                body.get("refuse_seconds", 0)
            )
            for socket in list(self._sockets):
                with contextlib.suppress(RuntimeError):
                    await socket.close(code=1012)
            self._sockets.clear()
        state = asdict(self.faults)
        state["websockets"] = len(self._sockets)
        return Response(orjson.dumps(state), media_type="application/json")

    async def admin_stats(self, request: Request) -> Response:
        if request.method == "POST":
            self.stats = Stats()
            self._windows.clear()
        return Response(
            orjson.dumps(self.stats.summary(self.config.rate_window_seconds)),
            media_type="application/json",
        )

    async def admin_mutate(self, request: Request) -> Response:
        body = orjson.loads(await request.body() or b"{}")
        changed = mutate(
            self.data,
            self.clock,
            self._rng,
            self._new_id,
            customers_added=int(body.get("customers_added", 0)),
            customers_updated=int(body.get("customers_updated", 0)),
            reservations_updated=int(body.get("reservations_updated", 0)),
            resources_updated=int(body.get("resources_updated", 0)),
        )
        events: list[dict[str, Any]] = []
        for customer_id in changed["customers_added"]:
            events.append({"Discriminator": "CustomerAdded", "Value": {"Id": customer_id}})
            events.append({"Discriminator": "CustomerUpdated", "Value": {"Id": customer_id}})
        events += [
            {"Discriminator": "CustomerUpdated", "Value": {"Id": i}}
            for i in changed["customers_updated"]
        ]
        events += [
            {"Discriminator": "ServiceOrderUpdated", "Value": {"Id": i}}
            for i in changed["reservations"]
        ]
        events += [
            {"Discriminator": "ResourceUpdated", "Value": {"Id": i}} for i in changed["resources"]
        ]
        self._queue_webhook(events)
        socket_events = [
            {
                "Type": "Reservation",
                "Id": r["Id"],
                "State": r["State"],
                "StartUtc": r["StartUtc"],
                "EndUtc": r["EndUtc"],
                "AssignedResourceId": r["AssignedResourceId"],
            }
            for r in (self.data.reservations[i] for i in changed["reservations"])
        ] + [
            {"Type": "Resource", "Id": r["Id"], "State": r["State"]}
            for r in (self.data.resources[i] for i in changed["resources"])
        ]
        await self._broadcast(socket_events)
        return Response(orjson.dumps(changed), media_type="application/json")

    def asgi(self) -> Starlette:
        return Starlette(
            routes=[
                Route(
                    PREFIX + "{operation:path}", self.api, methods=["GET", "POST", "PUT", "DELETE"]
                ),
                WebSocketRoute("/ws/connector", self.websocket),
                Route("/_admin/faults", self.admin_faults, methods=["POST"]),
                Route("/_admin/stats", self.admin_stats, methods=["GET"]),
                Route("/_admin/stats/reset", self.admin_stats, methods=["POST"]),
                Route("/_admin/mutate", self.admin_mutate, methods=["POST"]),
            ]
        )
