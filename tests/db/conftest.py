"""Both store transports on the same fresh database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest

from shared.db.store import PsycopgTransport, Store, SupabaseTransport
from shared.netserve import serve_in_thread
from tests.support import postgrest_double
from tests.support.tenancy import seed_tenancy


@pytest.fixture
def seeded_database_url(database_url: str) -> str:
    with psycopg.connect(database_url, autocommit=True) as conn:
        seed_tenancy(conn)
    return database_url


@pytest.fixture(params=["psycopg", "supabase"])
async def any_store(
    request: pytest.FixtureRequest, seeded_database_url: str
) -> AsyncIterator[Store]:
    """The store over each transport: psycopg directly, and the Supabase client through HTTP to
    the PostgREST double."""
    if request.param == "psycopg":
        store = Store(await PsycopgTransport.connect(seeded_database_url, max_size=2))
        yield store
        await store.aclose()
        return
    with serve_in_thread(postgrest_double.create_app(seeded_database_url)) as server:
        key = postgrest_double.make_jwt("service_role")
        store = Store(await SupabaseTransport.connect(server.http_url, key))
        yield store
        await store.aclose()
