"""Every Mews entity we mirror, declared once: what the engine, the commands, the listener and
the functions loop over.

An :class:`EntitySpec` says where an entity's records go (the mirror table and its guarded
upsert ``upsert_<table>``, which derives the typed columns from the records), which model reads
them, whose scope they belong to (a chain or an enterprise), how they are read by
filter (the client's ``getAll`` and the time field of the first load's windows, or a sweep by
the ids of their owners when Mews gives them no time filter), how they are read by id (for
webhooks and WebSocket events), whether staff edits are pushed back, and which General Webhook
discriminators and WebSocket event type name them (docs/MEWS.md#endpoints, #general-webhooks,
#websocket). Adding an entity is one spec here, a
migration with its table and upsert, and their tests.

A name that is not an entity is an error (:class:`UnknownEntityError`), wherever it is named.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from shared.mews.client import MewsClient, Page
from shared.mews.models import Address, Company, Customer, IdentityDocument, Reservation, Resource

Reader = Callable[..., AsyncIterator[Page[Any]]]
ScopeKind = Literal["chain", "enterprise"]


class UnknownEntityError(ValueError):
    """A name that is not one of :data:`ENTITIES`."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown entity {name!r}: one of {', '.join(ENTITIES)}")
        self.name = name


@dataclass(frozen=True)
class ById:
    """Reading records by id: the client's operation, the keyword that takes the ids, and the
    documented maximum of ids per request."""

    read: Callable[[MewsClient], Reader]
    ids: str
    batch: int


@dataclass(frozen=True)
class Sweep:
    """An entity without a time filter, read by the ids of the records it belongs to: every
    owner of the scope (their ids paged out of the database by ``owner_ids``) on a first load
    or a full compare, and the owners refreshed by id (a webhook) each time."""

    owner: str
    owner_ids: str
    read: ById


@dataclass(frozen=True)
class PollAlso:
    """A further window each poll reads, by another time field and with its own filters (what
    an ``UpdatedUtc`` window does not return)."""

    field: str
    filters: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class EntitySpec:
    """One Mews entity (see the module)."""

    name: str
    table: str
    model: type[BaseModel]
    scope: ScopeKind
    # pages by the scope and a time filter (``None``: no time filter, the entity is swept)
    read: Callable[[MewsClient], Reader] | None = None
    # the time field of the first load's windows; ``None``: one read of everything
    first_load: Literal["created_utc", "updated_utc"] | None = None
    sweep: Sweep | None = None
    poll_also: tuple[PollAlso, ...] = ()
    by_id: ById | None = None
    pushed: bool = False
    # the General Webhook discriminators and the WebSocket event type that name its records
    webhook_events: tuple[str, ...] = ()
    websocket_type: str | None = None

    @property
    def upsert_function(self) -> str:
        """The guarded upsert of the mirror table (``upsert_<table>(p_scope_id, p_records)``)."""
        return f"upsert_{self.table}"

    @property
    def on_websocket(self) -> bool:
        """Whether Mews sends its changes over the WebSocket."""
        return self.websocket_type is not None

    @property
    def windowed(self) -> bool:
        """Whether the first load goes window by window."""
        return self.read is not None and self.first_load is not None

    def __post_init__(self) -> None:
        if (self.read is None) == (self.sweep is None):
            raise ValueError(f"{self.name}: read by a time filter or swept, one of the two")
        if self.first_load is not None and self.read is None:
            raise ValueError(f"{self.name}: a first load by windows needs a read by filter")
        if (self.webhook_events or self.websocket_type) and self.by_id is None:
            raise ValueError(f"{self.name}: what Mews notifies is read by id")


def _chain(name: str, table: str, model: type[BaseModel], **more: Any) -> EntitySpec:
    return EntitySpec(name, table, model, "chain", **more)


def _enterprise(name: str, table: str, model: type[BaseModel], **more: Any) -> EntitySpec:
    return EntitySpec(name, table, model, "enterprise", **more)


_SPECS = (
    _chain(
        "customers",
        "guests",
        Customer,
        read=lambda c: c.customers,
        first_load="created_utc",
        # deletions: DeletedUtc with ActivityStates Deleted (docs/MEWS.md#customers)
        poll_also=(PollAlso("deleted_utc", (("activity_states", ("Deleted",)),)),),
        by_id=ById(lambda c: c.customers, "customer_ids", 1000),
        pushed=True,
        webhook_events=("CustomerAdded", "CustomerUpdated"),
    ),
    _chain(
        "addresses",
        "guest_addresses",
        Address,
        read=lambda c: c.addresses,
        # addresses/getAll has no CreatedUtc filter (docs/MEWS.md#addresses)
        first_load="updated_utc",
    ),
    _chain(
        "companies",
        "vendors",
        Company,
        read=lambda c: c.companies,
        first_load="created_utc",
    ),
    _enterprise(
        "reservations",
        "reservations",
        Reservation,
        read=lambda c: c.reservations,
        first_load="created_utc",
        by_id=ById(lambda c: c.reservations, "reservation_ids", 1000),
        webhook_events=("ServiceOrderUpdated",),
        websocket_type="Reservation",
    ),
    _enterprise(
        "resources",
        "resources",
        Resource,
        # few, rarely changed (docs/MEWS.md#resources): a first load reads all
        read=lambda c: c.resources,
        by_id=ById(lambda c: c.resources, "resource_ids", 1000),
        webhook_events=("ResourceUpdated",),
        websocket_type="Resource",
    ),
    _chain(
        "identity_documents",
        "guest_identity_documents",
        IdentityDocument,
        # no time filter (docs/MEWS.md#identity-documents): read by CustomerIds, ≤ 100 a request
        sweep=Sweep(
            "customers", "guest_ids_page", ById(lambda c: c.identity_documents, "customer_ids", 100)
        ),
    ),
)

SPECS: Mapping[str, EntitySpec] = {spec.name: spec for spec in _SPECS}
ENTITIES: tuple[str, ...] = tuple(SPECS)


def entity(name: str) -> EntitySpec:
    """The spec of ``name``; :class:`UnknownEntityError` when there is none."""
    try:
        return SPECS[name]
    except KeyError:
        raise UnknownEntityError(name) from None


def entities(names: Iterable[str] | None = None) -> tuple[EntitySpec, ...]:
    """The specs of ``names`` (every entity when ``None``), in the order given: the one check
    of names where they come in (a command's ``--entity``, a function's ``?entity=``); below,
    specs are passed. :class:`UnknownEntityError` for a name that is no entity."""
    if names is None:
        return tuple(SPECS.values())
    return tuple(entity(name) for name in names)


def followers(name: str) -> tuple[EntitySpec, ...]:
    """The entities swept by the ids of ``name``'s records (refreshed with them)."""
    return tuple(s for s in SPECS.values() if s.sweep is not None and s.sweep.owner == name)


def pushed() -> EntitySpec:
    """The entity whose staff edits are pushed back to Mews."""
    (spec,) = (s for s in SPECS.values() if s.pushed)
    return spec
