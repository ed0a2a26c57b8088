"""The simulator's HTTP and WebSocket server (Starlette), its limits, latency and faults.

Every request is answered from the data its AccessToken covers (a property, or the
portfolio: :mod:`shared.simulator.tenants`); each token has its own rate-limit window.

Routes:
- ``POST /api/connector/v1/<operation>`` — the Connector API operations we use.
- ``WS /ws/connector`` — cookie-authenticated WebSocket events of the token's enterprises.
- ``/_admin/faults``, ``/_admin/stats``, ``/_admin/stats/reset`` — faults and counters.
- ``/_admin/mutate`` — staff at work (``property``: an index, an enterprise id or ``"all"``).
- ``/_admin/integration`` — send an Integration Webhook for a property (and apply it).
- ``/_admin/properties`` — the properties, their enterprises and tokens.
- ``/_admin/duplicates`` — the truth of the planted duplicates and look-alikes (``--duplicates``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from http.cookies import SimpleCookie
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from shared.simulator.config import (
    DEMO_NET_ACCESS_TOKEN,
    FIXTURE_ACCESS_TOKEN,
    FIXTURE_CLIENT_TOKEN,
    SimulatorConfig,
)
from shared.simulator.data import SimData
from shared.simulator.hooks import WebhookError, WebhookSender
from shared.simulator.outbox import (
    Event,
    by_enterprise,
    customer_events,
    general_message,
    integration_message,
    mutation_events,
    socket_events,
)
from shared.simulator.queries import READS, ReadSpec, RequestError, run_read
from shared.simulator.stats import Stats
from shared.simulator.tenants import Tenant, select
from shared.simulator.writes import (
    Clock,
    add_customer,
    merge_accounts,
    mutate,
    update_accounts,
    update_customer,
)

__all__ = [
    "DEMO_NET_ACCESS_TOKEN",
    "FIXTURE_ACCESS_TOKEN",
    "FIXTURE_CLIENT_TOKEN",
    "PREFIX",
    "Faults",
    "SimulatorApp",
    "SimulatorConfig",
    "Stats",
]

PREFIX = "/api/connector/v1/"
WRITES = ("customers/add", "customers/update", "accounts/update", "accounts/merge")
MUTATION_COUNTS = (
    "customers_added",
    "customers_updated",
    "reservations_updated",
    "resources_updated",
)


@dataclass
class Faults:
    """What goes wrong next. ``statuses``: answer the next requests with these codes.
    ``targeted``: answer the requests of one ``operation`` whose body contains ``matching``
    (e.g. one time window's start) with ``status``, ``times`` times."""

    statuses: list[int] = field(default_factory=list)
    targeted: list[dict[str, Any]] = field(default_factory=list)
    storm: int = 0  # the next N requests get 429
    storm_retry_after: int = 1
    extra_delay_ms: float = 0.0
    refuse_websockets_until: float = 0.0  # monotonic time


def _error(
    status: int, message: str, request_id: str, headers: dict[str, str] | None = None
) -> Response:
    body = orjson.dumps({"Message": message, "RequestId": request_id, "Details": None})
    return Response(
        body, status, {"Request-Id": request_id, **(headers or {})}, media_type="application/json"
    )


def _json(value: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status, media_type="application/json")


class SimulatorApp:
    """State and behaviour; :meth:`asgi` builds the Starlette app. ``tenants[0]`` is property
    0, whose data :attr:`data` is (what single-property users read)."""

    def __init__(self, config: SimulatorConfig, tenants: list[Tenant]) -> None:
        self.config = config
        self.tenants = tenants
        self.faults = Faults()
        self.stats = Stats()
        self.clock = Clock()
        self._windows: dict[str, deque[float]] = {}
        self._sockets: dict[WebSocket, str] = {}  # open socket → its AccessToken
        self._tasks: set[asyncio.Task[None]] = set()
        self._tokens: dict[str, Tenant] = {}
        self._token_names: dict[str, str] = {}  # every token ever served → its property's name
        # one sender of webhooks (per event loop): a client per delivery built a TLS context
        # each time, most of the simulator's CPU under a steady stream of changes
        self._http: tuple[asyncio.AbstractEventLoop, WebhookSender] | None = None
        self._index_tokens()

    @property
    def data(self) -> SimData:
        return self.tenants[0].data

    def _index_tokens(self) -> None:
        self._tokens = {token: t for t in reversed(self.tenants) for token in t.tokens}
        for token, tenant in self._tokens.items():
            self._token_names.setdefault(token, tenant.name)

    def _sender(self) -> WebhookSender:
        """What webhooks are sent with (kept while the loop serving them runs)."""
        loop = asyncio.get_running_loop()
        if self._http is None or self._http[0] is not loop:
            self._http = (loop, WebhookSender(timeout=5))
        return self._http[1]

    async def _close_sender(self) -> None:
        held, self._http = self._http, None
        if held is not None and held[0] is asyncio.get_running_loop():
            await held[1].aclose()

    def _tenant(self, token: Any) -> Tenant | None:
        return self._tokens.get(token) if isinstance(token, str) else None

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
        if handler is None and operation not in ("configuration/get", *WRITES):
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
        tenant = self._tenant(token)
        if body.get("ClientToken") not in self.config.client_tokens or tenant is None:
            return _error(401, "Invalid ClientToken or AccessToken.", request_id)
        if not tenant.enabled:
            return _error(401, "The integration is disabled for this enterprise.", request_id)
        limited = self._take_slot(str(token), request_id)
        if limited is not None:
            return limited
        self.stats.operations[operation] = self.stats.operations.get(operation, 0) + 1
        if self.faults.statuses:
            status = self.faults.statuses.pop(0)
            return _error(status, f"Injected fault {status}.", request_id)
        targeted = self._targeted(operation, await request.body())
        if targeted is not None:
            return _error(targeted, f"Injected fault {targeted}.", request_id)
        try:
            result = self._dispatch(operation, handler, body, tenant)
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

    def _targeted(self, operation: str, body: bytes) -> int | None:
        """The status of the first targeted fault this request matches (one of its times
        used), or None."""
        for fault in self.faults.targeted:
            if fault["operation"] == operation and fault["matching"].encode() in body:
                fault["times"] -= 1
                if fault["times"] <= 0:
                    self.faults.targeted.remove(fault)
                return int(fault["status"])
        return None

    def _dispatch(
        self, operation: str, spec: ReadSpec | None, body: dict[str, Any], tenant: Tenant
    ) -> dict[str, Any]:
        data = tenant.data
        if spec is not None:
            tenant.check_read(operation, body)
            return run_read(spec, data, body)
        if operation == "configuration/get":
            return {
                "NowUtc": self.clock.stamp(None),
                "Enterprise": tenant.enterprise_for_configuration(body.get("EnterpriseId")),
                "Service": None,
                "PaymentCardStorage": None,
                "IsIdentityDocumentNumberRequired": True,
            }
        if operation == "accounts/merge":  # names no chain (docs/MEWS.md#account-merge)
            merged = merge_accounts(data, body, self.clock)
            self._queue_webhook(tenant, customer_events(list(dict.fromkeys(merged))))
            return {}
        tenant.check_write(body)
        if operation == "customers/add":
            customer, created = add_customer(data, body, self.clock, tenant.new_id)
            self._queue_webhook(tenant, customer_events([customer["Id"]], added=created))
            return customer
        if operation == "customers/update":
            customer = update_customer(data, body, self.clock)
            self._queue_webhook(tenant, customer_events([customer["Id"]]))
            return customer
        answer = update_accounts(data, body, self.clock)
        self._queue_webhook(tenant, customer_events([a["Id"] for a in answer["Accounts"]]))
        return answer

    def _take_slot(self, token: str, request_id: str) -> Response | None:
        now = time.monotonic()
        self.stats.arrivals.setdefault(token, []).append(now)
        if self.faults.storm > 0:
            self.faults.storm -= 1
            return self._limited(token, request_id, self.faults.storm_retry_after, now)
        limit = self.config.rate_limit
        window = self._windows.setdefault(token, deque())
        if limit is not None:
            while window and now - window[0] >= self.config.rate_window_seconds:
                window.popleft()
            if len(window) >= limit:
                wait = self.config.rate_window_seconds - (now - window[0])
                return self._limited(token, request_id, max(1, int(wait + 0.999)), now)
            window.append(now)
        self.stats.accepted.setdefault(token, []).append(now)
        return None

    def _limited(self, token: str, request_id: str, retry_after: int, now: float) -> Response:
        self.stats.limited[token] = self.stats.limited.get(token, 0) + 1
        self.stats.blocks.setdefault(token, []).append((now, now + retry_after))
        return _error(429, "Too many requests.", request_id, {"Retry-After": str(retry_after)})

    # -- events out: webhooks and WebSocket -----------------------------------------------

    def _queue_webhook(self, tenant: Tenant, events: list[Event]) -> None:
        if not self.config.webhook_url or not events or not tenant.enabled:
            return
        for enterprise_id, group in by_enterprise(tenant, events):
            task = asyncio.get_running_loop().create_task(
                self._deliver(tenant, enterprise_id, group)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, tenant: Tenant, enterprise_id: str, events: list[Event]) -> None:
        await asyncio.sleep(self.config.webhook_delay_seconds)
        if self.config.webhook_duplicates:
            events = events + tenant.rng.sample(events, max(1, len(events) // 5))
        size = self.config.webhook_batch_size
        batches = [events[i : i + size] for i in range(0, len(events), size)]
        if self.config.webhook_duplicates:
            batches.reverse()
        http = self._sender()
        for batch in batches:
            message = general_message(tenant, enterprise_id, batch)
            for attempt in range(3):  # Mews re-sends after a failure
                url = self.config.webhook_url
                if url is None:  # webhooks were switched off meanwhile
                    return
                with contextlib.suppress(WebhookError):
                    if 200 <= await http.post(url, message) < 300:
                        self.stats.webhooks_sent += 1
                        self.stats.webhook_events_sent += len(batch)
                        break
                await asyncio.sleep(0.2 * (attempt + 1))

    async def _broadcast(self, tenant: Tenant, events: list[Event]) -> None:
        if not events:
            return
        frame = orjson.dumps({"Events": events}).decode()
        for socket, token in list(self._sockets.items()):
            if self._tokens.get(token) is not tenant:
                continue
            try:
                await socket.send_text(frame)
                self.stats.websocket_messages_sent += 1
            except (WebSocketDisconnect, RuntimeError):
                self._sockets.pop(socket, None)

    async def websocket(self, socket: WebSocket) -> None:
        cookie = SimpleCookie()
        cookie.load(socket.headers.get("cookie", ""))
        client = cookie.get("ClientToken")
        access = cookie.get("AccessToken")
        refused = time.monotonic() < self.faults.refuse_websockets_until
        tenant = self._tenant(access.value) if access is not None else None
        if (
            refused
            or client is None
            or access is None
            or client.value not in self.config.client_tokens
            or tenant is None
            or not tenant.enabled
        ):
            await socket.close(code=1008 if not refused else 1013)
            return
        await socket.accept()
        self._sockets[socket] = access.value
        try:
            while True:
                await socket.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            self._sockets.pop(socket, None)

    async def _close_sockets(self, which: list[WebSocket], code: int) -> None:
        for socket in which:
            self._sockets.pop(socket, None)
            with contextlib.suppress(RuntimeError):
                await socket.close(code=code)

    # -- admin -----------------------------------------------------------------------------

    async def admin_faults(self, request: Request) -> Response:
        body = orjson.loads(await request.body() or b"{}")
        self.faults.statuses.extend(int(s) for s in body.get("statuses", []))
        self.faults.targeted.extend(
            {
                "operation": str(t["operation"]),
                "matching": str(t["matching"]),
                "status": int(t.get("status", 500)),
                "times": int(t.get("times", 1)),
            }
            for t in body.get("targeted", [])
        )
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
            await self._close_sockets(list(self._sockets), 1012)
        state = asdict(self.faults)
        state["websockets"] = len(self._sockets)
        return _json(state)

    async def admin_stats(self, request: Request) -> Response:
        if request.method == "POST":
            self.stats = Stats()
            self._windows.clear()
        return _json(self.stats.summary(self.config.rate_window_seconds, self._token_names))

    async def admin_mutate(self, request: Request) -> Response:
        body = orjson.loads(await request.body() or b"{}")
        try:
            chosen = select(self.tenants, body.get("property"))
        except RequestError as exc:
            return _json({"error": exc.message}, 400)
        counts = {name: int(body.get(name, 0)) for name in MUTATION_COUNTS}
        merged: dict[str, list[str]] = {}
        for tenant in chosen:
            changed = mutate(tenant.data, self.clock, tenant.rng, tenant.new_id, **counts)
            self._queue_webhook(tenant, mutation_events(changed))
            await self._broadcast(tenant, socket_events(tenant.data, changed))
            for kind, ids in changed.items():
                merged.setdefault(kind, []).extend(ids)
        return _json(merged)

    async def admin_integration(self, request: Request) -> Response:
        """Apply an Integration Webhook's action to one property and POST the webhook to
        ``url`` (default: the General Webhook URL); answers the receiver's status."""
        body = orjson.loads(await request.body() or b"{}")
        try:
            tenant, url = self._integration_target(body)
            action = str(body.get("action", "IntegrationCreated"))
            message = integration_message(tenant, action, self.config.seed, self.clock.stamp(None))
        except RequestError as exc:
            return _json({"error": exc.message}, 400)
        self._index_tokens()
        stale = [s for s, token in self._sockets.items() if not self._valid(token)]
        await self._close_sockets(stale, 1008)
        status, error = None, None
        try:
            status = await self._sender().post(url, message)
            self.stats.integration_webhooks_sent += 1
        except WebhookError as exc:
            error = f"{type(exc).__name__}: {exc}"
        info = asdict(tenant.info())
        return _json({"status": status, "error": error, "message": message, "property": info})

    def _integration_target(self, body: dict[str, Any]) -> tuple[Tenant, str]:
        chosen = select(self.tenants, body.get("property", 0))
        url = body.get("url") or self.config.webhook_url
        if len(chosen) != 1 or not isinstance(url, str):
            raise RequestError(400, "Give one property and a url (or set a webhook url).")
        return chosen[0], url

    def _valid(self, token: str) -> bool:
        tenant = self._tokens.get(token)
        return tenant is not None and tenant.enabled

    async def admin_properties(self, request: Request) -> Response:
        return _json([asdict(t.info()) for t in self.tenants])

    async def admin_duplicates(self, request: Request) -> Response:
        """Per property, the planted pairs: ``same`` (one person entered twice) or not."""
        return _json(
            [
                {"property": t.index, "chain_id": t.data.chain_id, "pairs": t.data.planted}
                for t in self.tenants
            ]
        )

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await self._close_sender()

    def asgi(self) -> Starlette:
        return Starlette(
            lifespan=self._lifespan,
            routes=[
                Route(
                    PREFIX + "{operation:path}", self.api, methods=["GET", "POST", "PUT", "DELETE"]
                ),
                WebSocketRoute("/ws/connector", self.websocket),
                Route("/_admin/faults", self.admin_faults, methods=["POST"]),
                Route("/_admin/stats", self.admin_stats, methods=["GET"]),
                Route("/_admin/stats/reset", self.admin_stats, methods=["POST"]),
                Route("/_admin/mutate", self.admin_mutate, methods=["POST"]),
                Route("/_admin/integration", self.admin_integration, methods=["POST"]),
                Route("/_admin/properties", self.admin_properties, methods=["GET"]),
                Route("/_admin/duplicates", self.admin_duplicates, methods=["GET"]),
            ],
        )
