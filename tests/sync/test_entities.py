"""The entity specs: each entity declared once, each spec backed by a migrated table and upsert,
and an unknown entity name an error where names come in (the engine takes specs)."""

from __future__ import annotations

import psycopg
import pytest

from shared.intake.events import GENERAL_DISCRIMINATORS, WEBSOCKET_TYPES
from shared.mews.models import Customer
from shared.sync import entities
from shared.sync.engine import ENTITIES
from shared.sync.entities import EntitySpec, UnknownEntityError, entity

pytestmark = pytest.mark.anyio


def test_every_entity_is_declared_once_under_its_own_name() -> None:
    """The registry's keys are its specs' names, each table written by one entity."""
    assert [spec.name for spec in entities.SPECS.values()] == list(ENTITIES)
    tables = [spec.table for spec in entities.SPECS.values()]
    assert len(tables) == len(set(tables))


def test_an_unknown_name_is_an_error_naming_the_entities() -> None:
    """``entity`` and ``entities`` refuse a name that is not an entity, and say which are."""
    with pytest.raises(UnknownEntityError, match=r"'guests'.*customers"):
        entity("guests")
    with pytest.raises(UnknownEntityError):
        entities.entities(["customers", "bookings"])
    chosen = entities.entities(["resources", "customers"])
    assert chosen == (entities.SPECS["resources"], entities.SPECS["customers"])
    assert [spec.name for spec in entities.entities()] == list(ENTITIES)


def test_an_entity_is_read_by_a_time_filter_or_swept_never_both() -> None:
    """A spec without a read by filter and without a sweep (or with both) is refused."""
    with pytest.raises(ValueError, match="one of the two"):
        EntitySpec("things", "things", Customer, "chain")
    with pytest.raises(ValueError, match="needs a read by filter"):
        EntitySpec(
            "things",
            "things",
            Customer,
            "chain",
            sweep=entity("identity_documents").sweep,
            first_load="created_utc",
        )


def test_identity_documents_follow_customers_and_customers_are_pushed() -> None:
    """What has no time filter is refreshed with its owners; one entity is pushed back."""
    assert [s.name for s in entities.followers("customers")] == ["identity_documents"]
    assert entities.followers("reservations") == ()
    assert entities.pushed().name == "customers"
    assert {s.name for s in entities.SPECS.values() if s.on_websocket} == {
        "reservations",
        "resources",
    }


def test_every_spec_has_its_table_and_upserts_in_a_migrated_database(database_url: str) -> None:
    """Each spec's table exists with RLS on, with its upsert of records and no other; a sweep's
    owner ids are paged by a function that exists."""
    with psycopg.connect(database_url) as conn:

        def signatures(fn: str) -> set[str]:
            rows = conn.execute(
                "select pg_get_function_identity_arguments(oid) from pg_proc"
                " where pronamespace = 'public'::regnamespace and proname = %s",
                (fn,),
            ).fetchall()
            return {args for (args,) in rows}

        for spec in entities.SPECS.values():
            (rls,) = conn.execute(
                "select relrowsecurity from pg_class where oid = %s::regclass",
                (f"public.{spec.table}",),
            ).fetchone() or (None,)
            assert rls is True, spec.table
            assert signatures(spec.upsert_function) == {"p_scope_id uuid, p_records jsonb"}, (
                spec.name
            )
            if spec.sweep is not None:
                assert signatures(spec.sweep.owner_ids), spec.sweep.owner_ids


def test_every_entity_mews_notifies_can_be_refreshed_by_id() -> None:
    """What a webhook or a WebSocket frame names is an entity read by id; the WebSocket's
    entities are those the specs say it sends (what a catch-up polls)."""
    notified = {e for e in GENERAL_DISCRIMINATORS.values() if e} | {
        e for e in WEBSOCKET_TYPES.values() if e
    }
    assert {name for name in notified if entity(name).by_id is not None} == notified
    assert {e for e in WEBSOCKET_TYPES.values() if e} == {
        s.name for s in entities.SPECS.values() if s.on_websocket
    }


def test_the_event_maps_are_the_registrys() -> None:
    """Each discriminator and WebSocket type names the entity whose spec declares it; those Mews
    sends that name nothing we mirror are known, not unknown."""
    assert {d: e for d, e in GENERAL_DISCRIMINATORS.items() if e} == {
        "CustomerAdded": "customers",
        "CustomerUpdated": "customers",
        "ServiceOrderUpdated": "reservations",
        "ResourceUpdated": "resources",
    }
    assert {t: e for t, e in WEBSOCKET_TYPES.items() if e} == {
        "Reservation": "reservations",
        "Resource": "resources",
    }


def test_what_mews_notifies_must_be_readable_by_id() -> None:
    with pytest.raises(ValueError, match="read by id"):
        EntitySpec(
            "things",
            "things",
            Customer,
            "chain",
            read=lambda c: c.customers,
            webhook_events=("ThingUpdated",),
        )
