"""The Mews Connector API client: one method per operation we use.

It is handed its ``httpx.AsyncClient`` (the caller owns connections and timeouts) and a
:class:`~shared.mews.ratelimit.RateLimiter` (the budget shared by every process on the token).
Each request: take a slot, POST the JSON body with the tokens, map the status to the error
tree, retry what is retriable (408, 429, 5xx, network) with ``Retry-After`` or capped
exponential backoff with full jitter. A 429 blocks the token for every process for its whole
``Retry-After`` (the retry then waits for a slot like any request); a slot the limiter tracks
hands its answer back.

Paged reads yield :class:`Page` objects: the records as Mews sent them (stored as-is in the
mirror), read on first use into the records that validated, aligned with their raw JSON, and the
records that did not, with the reason, for quarantine. One bad record never fails a page.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx
import orjson
from pydantic import BaseModel, SecretStr, TypeAdapter, ValidationError

from shared.logs import get_logger
from shared.mews.errors import (
    MewsAuthError,
    MewsError,
    MewsNetworkError,
    MewsRateLimitedError,
    MewsResponseError,
    error_from_response,
)
from shared.mews.models import (
    NUL_FREE,
    Address,
    Company,
    Configuration,
    Customer,
    Enterprise,
    IdentityDocument,
    Reservation,
    Resource,
)
from shared.mews.paging import MAX_PAGE_SIZE, Pager
from shared.mews.ratelimit import RateLimiter, Slot
from shared.settings import Settings

T = TypeVar("T", bound=BaseModel)
log = get_logger(__name__)

API_PREFIX = "/api/connector/v1/"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a retriable failure."""

    max_attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 60.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(cap, base × 2^attempt)]."""
        return rng.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


@dataclass(frozen=True)
class Rejected:
    """A record that failed validation: quarantined with its reason, never dropped."""

    record: Any
    reason: str

    @property
    def record_id(self) -> str | None:
        return str(self.record.get("Id")) if isinstance(self.record, dict) else None


@dataclass
class Page(Generic[T]):
    """One page of a ``getAll``: its records as Mews sent them, read into ``model`` on first use
    of ``items``, ``raws`` or ``rejected`` (a caller that only counts or forwards the records
    never pays for the models)."""

    model: type[T]
    records: list[Any]
    cursor: str | None
    _parsed: tuple[list[T], list[dict[str, Any]], list[Rejected]] | None = field(
        default=None, repr=False, compare=False
    )

    @property
    def items(self) -> list[T]:
        """The records the model accepted, read."""
        return self._parse()[0]

    @property
    def raws(self) -> list[dict[str, Any]]:
        """The JSON each of :attr:`items` was read from (``raws[i]`` for ``items[i]``)."""
        return self._parse()[1]

    @property
    def rejected(self) -> list[Rejected]:
        """The records the model refused, with the reason."""
        return self._parse()[2]

    def _parse(self) -> tuple[list[T], list[dict[str, Any]], list[Rejected]]:
        if self._parsed is None:
            self._parsed = parse_records(self.model, self.records)
        return self._parsed


@dataclass
class ClientStats:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


def _reason(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "record"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def parse_records(
    model: type[T], records: Sequence[Any]
) -> tuple[list[T], list[dict[str, Any]], list[Rejected]]:
    """Validate a page's records: all at once when they are all good, one by one otherwise.
    A page whose JSON holds no escaped NUL at all is validated without the check per record."""
    adapter: TypeAdapter[list[T]] = _adapter(model)
    try:
        items = adapter.validate_python(records, context={NUL_FREE: _nul_free(records)})
    except ValidationError:
        pass
    else:
        return items, list(records), []
    items, raws, rejected = [], [], []
    for record in records:
        if not isinstance(record, dict):
            rejected.append(
                Rejected(record, f"expected a JSON object, got {type(record).__name__}")
            )
            continue
        try:
            items.append(model.model_validate(record))
        except ValidationError as exc:
            rejected.append(Rejected(record, _reason(exc)))
        else:
            raws.append(record)
    return items, raws, rejected


def _nul_free(records: Sequence[Any]) -> bool:
    """Whether no string or key of the page holds a NUL: JSON can only write one as \\u0000."""
    try:
        return b"\\u0000" not in orjson.dumps(records)
    except TypeError:
        return False  # not plain JSON data: each record is checked on its own


_ADAPTERS: dict[type[Any], TypeAdapter[Any]] = {}


def _adapter(model: type[T]) -> TypeAdapter[list[T]]:
    if model not in _ADAPTERS:
        _ADAPTERS[model] = TypeAdapter(list[model])  # type: ignore[valid-type]
    return _ADAPTERS[model]


class MewsClient:
    """An async client for one connection (ClientToken + AccessToken)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        platform_url: str,
        client_token: SecretStr,
        access_token: SecretStr,
        client_name: str,
        limiter: RateLimiter,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._http = http
        self._base = platform_url.rstrip("/") + API_PREFIX
        self._client_token = client_token
        self._access_token = access_token
        self._client_name = client_name
        self._limiter = limiter
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.stats = ClientStats()

    @classmethod
    def from_settings(
        cls, settings: Settings, http: httpx.AsyncClient, limiter: RateLimiter, **kwargs: Any
    ) -> MewsClient:
        kwargs.setdefault("access_token", settings.mews_access_token)  # or a connection's
        return cls(
            http,
            platform_url=settings.mews_platform_url,
            client_token=settings.mews_client_token,
            client_name=settings.mews_client_name,
            limiter=limiter,
            **kwargs,
        )

    # -- transport ------------------------------------------------------------------------

    async def call(self, operation: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """POST ``body`` to ``operation``; the JSON object Mews returned, or None for 204."""
        payload = orjson.dumps(
            {
                **body,
                "ClientToken": self._client_token.get_secret_value(),
                "AccessToken": self._access_token.get_secret_value(),
                "Client": self._client_name,
            }
        )
        attempt = 0
        while True:
            try:
                return await self._send(operation, payload, attempt)
            except MewsError as exc:
                if not exc.retriable or attempt + 1 >= self._retry.max_attempts:
                    log.warning(
                        "mews call failed",
                        operation=operation,
                        status=exc.status,
                        request_id=exc.request_id,
                        attempts=attempt + 1,
                        error=exc.message,
                    )
                    raise
                self.stats.retries += 1
                wait = exc.retry_after
                if not isinstance(exc, MewsRateLimitedError):  # a 429's wait is the token's block
                    wait = self._wait(exc, attempt)
                    await self._sleep(wait)
                log.info(
                    "mews call retried",
                    operation=operation,
                    status=exc.status,
                    request_id=exc.request_id,
                    wait_seconds=None if wait is None else round(wait, 3),
                    attempt=attempt + 1,
                )
                attempt += 1

    def _wait(self, error: MewsError, attempt: int) -> float:
        """``Retry-After`` when Mews said it (whole), else capped backoff with jitter."""
        if error.retry_after is not None:
            return error.retry_after
        return min(self._retry.backoff(attempt, self._rng), self._retry.max_delay)

    async def _send(self, operation: str, payload: bytes, attempt: int) -> dict[str, Any] | None:
        slot = await self._limiter.acquire()
        try:
            data = await self._exchange(operation, payload)
        except MewsRateLimitedError as exc:
            # every call of this token, in every process, waits out the whole Retry-After
            # (never shortened), whether or not this call retries
            await self._limiter.pause(self._wait(exc, attempt), slot)
            raise
        except MewsError:
            await self._answered(slot)
            raise
        await self._answered(slot)
        return data

    async def _answered(self, slot: Slot) -> None:
        if slot.ticket is not None:
            await self._limiter.answered(slot)

    async def _exchange(self, operation: str, payload: bytes) -> dict[str, Any] | None:
        self.stats.requests += 1
        try:
            response = await self._http.post(
                self._base + operation,
                content=payload,
                headers={"Content-Type": "application/json"},
            )
        except httpx.TransportError as exc:
            # the exception's text can name the URL (no secrets) but never the body
            raise MewsNetworkError(type(exc).__name__, operation=operation) from None
        status = response.status_code
        self.stats.statuses[status] = self.stats.statuses.get(status, 0) + 1
        if status == 429:
            self.stats.rate_limited += 1
        if status == 204:
            return None
        if 200 <= status < 300:
            try:
                data = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                data = None
            if not isinstance(data, dict):
                raise MewsResponseError(
                    "the response is not a JSON object",
                    operation=operation,
                    status=status,
                    request_id=response.headers.get("request-id"),
                )
            return data
        error = error_from_response(
            operation, status, response.content, {k.lower(): v for k, v in response.headers.items()}
        )
        if isinstance(error, MewsAuthError):
            # the token is refused: every process on it stops calling Mews until it changes
            await self._limiter.mark_unauthorized(f"{operation}: {error.message}")
        raise error

    async def pages(
        self,
        operation: str,
        body: Mapping[str, Any],
        key: str,
        model: type[T],
        *,
        count: int = MAX_PAGE_SIZE,
    ) -> AsyncIterator[Page[T]]:
        """Walk every page of a ``getAll`` operation, newest first."""
        pager = Pager(count=count)
        while not pager.done:
            data = await self.call(operation, {**body, "Limitation": pager.limitation()})
            records = [] if data is None else (data.get(key) or [])
            cursor = None if data is None else data.get("Cursor")
            pager.advance(len(records), cursor)
            yield Page(model, list(records), cursor)

    # -- operations -----------------------------------------------------------------------

    async def configuration(self, enterprise_id: str | None = None) -> Configuration:
        body = {"EnterpriseId": enterprise_id} if enterprise_id else {}
        data = await self.call("configuration/get", body)
        return Configuration.model_validate(data or {})

    def enterprises(self, **filters: Any) -> AsyncIterator[Page[Enterprise]]:
        return self.pages("enterprises/getAll", filters, "Enterprises", Enterprise)

    def customers(
        self,
        *,
        chain_ids: Sequence[str] | None = None,
        customer_ids: Sequence[str] | None = None,
        created_utc: Mapping[str, str] | None = None,
        updated_utc: Mapping[str, str] | None = None,
        deleted_utc: Mapping[str, str] | None = None,
        activity_states: Sequence[str] = ("Active", "Deleted"),
        with_addresses: bool = False,
        count: int = MAX_PAGE_SIZE,
    ) -> AsyncIterator[Page[Customer]]:
        """``customers/getAll`` (≤ 1000 ids; a time filter ≤ 3 months). The default of
        ``ActivityStates`` is undocumented, so it is always sent."""
        _check_max("CustomerIds", customer_ids, 1000)
        _check_max("ChainIds", chain_ids, 1000)
        body: dict[str, Any] = {
            "Extent": {"Customers": True, "Addresses": with_addresses},
            "ActivityStates": list(activity_states),
        }
        _put(body, "ChainIds", chain_ids)
        _put(body, "CustomerIds", customer_ids)
        _put(body, "CreatedUtc", created_utc)
        _put(body, "UpdatedUtc", updated_utc)
        _put(body, "DeletedUtc", deleted_utc)
        return self.pages("customers/getAll", body, "Customers", Customer, count=count)

    async def add_customer(
        self, fields: Mapping[str, Any], *, overwrite_existing: bool = False
    ) -> Customer:
        data = await self.call("customers/add", {**fields, "OverwriteExisting": overwrite_existing})
        return Customer.model_validate(data or {})

    async def update_customer(
        self, customer_id: str, fields: Mapping[str, Any], *, chain_id: str | None = None
    ) -> Customer:
        """``customers/update``: sets plain values (it cannot clear a field)."""
        body: dict[str, Any] = {"CustomerId": customer_id, **fields}
        _put(body, "ChainId", chain_id)
        data = await self.call("customers/update", body)
        return Customer.model_validate(data or {})

    async def update_accounts(
        self, updates: Sequence[Mapping[str, Any]], *, chain_id: str | None = None
    ) -> dict[str, Any]:
        """``accounts/update``: the clearable edit (``{"Value": null}``), ≤ 1000 updates."""
        _check_max("AccountUpdates", updates, 1000)
        body: dict[str, Any] = {"AccountUpdates": list(updates)}
        _put(body, "ChainId", chain_id)
        return await self.call("accounts/update", body) or {}

    async def merge_accounts(self, merges: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """``accounts/merge`` (docs/MEWS.md#account-merge): at most 10
        ``AccountMergeParameters`` of ``{SourceAccountIds (≤ 1000), TargetAccountId,
        AccountType}``; the target survives with its id. The answer is ``{}``."""
        _check_max("AccountMergeParameters", merges, 10)
        for merge in merges:
            _check_max("SourceAccountIds", merge["SourceAccountIds"], 1000)
        body = {"AccountMergeParameters": [dict(merge) for merge in merges]}
        return await self.call("accounts/merge", body) or {}

    def addresses(
        self,
        *,
        chain_ids: Sequence[str] | None = None,
        account_ids: Sequence[str] | None = None,
        updated_utc: Mapping[str, str] | None = None,
        activity_states: Sequence[str] | None = None,
        count: int = MAX_PAGE_SIZE,
    ) -> AsyncIterator[Page[Address]]:
        _check_max("AccountIds", account_ids, 1000)
        body: dict[str, Any] = {}
        _put(body, "ActivityStates", activity_states)
        _put(body, "ChainIds", chain_ids)
        _put(body, "AccountIds", account_ids)
        _put(body, "UpdatedUtc", updated_utc)
        return self.pages("addresses/getAll", body, "Addresses", Address, count=count)

    def identity_documents(
        self,
        customer_ids: Sequence[str],
        *,
        chain_ids: Sequence[str] | None = None,
        count: int = 100,
    ) -> AsyncIterator[Page[IdentityDocument]]:
        """``identityDocuments/getAll``: ``CustomerIds`` is required, ≤ 100; no time filter."""
        if not customer_ids:
            raise ValueError("identityDocuments/getAll needs CustomerIds")
        _check_max("CustomerIds", customer_ids, 100)
        body: dict[str, Any] = {"CustomerIds": list(customer_ids)}
        _put(body, "ChainIds", chain_ids)
        return self.pages(
            "identityDocuments/getAll", body, "IdentityDocuments", IdentityDocument, count=count
        )

    def companies(
        self,
        *,
        chain_ids: Sequence[str] | None = None,
        ids: Sequence[str] | None = None,
        created_utc: Mapping[str, str] | None = None,
        updated_utc: Mapping[str, str] | None = None,
        count: int = MAX_PAGE_SIZE,
    ) -> AsyncIterator[Page[Company]]:
        _check_max("Ids", ids, 1000)
        body: dict[str, Any] = {"ActivityStates": ["Active", "Deleted"]}
        _put(body, "ChainIds", chain_ids)
        _put(body, "Ids", ids)
        _put(body, "CreatedUtc", created_utc)
        _put(body, "UpdatedUtc", updated_utc)
        return self.pages("companies/getAll", body, "Companies", Company, count=count)

    def reservations(
        self,
        *,
        enterprise_ids: Sequence[str] | None = None,
        reservation_ids: Sequence[str] | None = None,
        created_utc: Mapping[str, str] | None = None,
        updated_utc: Mapping[str, str] | None = None,
        states: Sequence[str] | None = None,
        count: int = MAX_PAGE_SIZE,
    ) -> AsyncIterator[Page[Reservation]]:
        _check_max("ReservationIds", reservation_ids, 1000)
        body: dict[str, Any] = {}
        _put(body, "States", states)
        _put(body, "EnterpriseIds", enterprise_ids)
        _put(body, "ReservationIds", reservation_ids)
        _put(body, "CreatedUtc", created_utc)
        _put(body, "UpdatedUtc", updated_utc)
        return self.pages(
            "reservations/getAll/2023-06-06", body, "Reservations", Reservation, count=count
        )

    def resources(
        self,
        *,
        enterprise_ids: Sequence[str] | None = None,
        resource_ids: Sequence[str] | None = None,
        updated_utc: Mapping[str, str] | None = None,
        include_inactive: bool = True,
        count: int = MAX_PAGE_SIZE,
    ) -> AsyncIterator[Page[Resource]]:
        _check_max("ResourceIds", resource_ids, 1000)
        body: dict[str, Any] = {"Extent": {"Resources": True, "Inactive": include_inactive}}
        _put(body, "EnterpriseIds", enterprise_ids)
        _put(body, "ResourceIds", resource_ids)
        _put(body, "UpdatedUtc", updated_utc)
        return self.pages("resources/getAll", body, "Resources", Resource, count=count)


def _put(body: dict[str, Any], name: str, value: Any) -> None:
    if value is not None:
        body[name] = list(value) if isinstance(value, list | tuple) else value


def _check_max(name: str, values: Sequence[Any] | None, limit: int) -> None:
    if values is not None and len(values) > limit:
        raise ValueError(f"Mews takes at most {limit} {name} per request, got {len(values)}")
