"""The store's two transports fail the same way, with the database's reason."""

from __future__ import annotations

import pytest

from shared.db.store import Store, StoreError, SupabaseTransport
from shared.netserve import serve_in_thread
from tests.support import postgrest_double

pytestmark = pytest.mark.anyio


async def test_an_unknown_function_is_a_store_error(any_store: Store) -> None:
    with pytest.raises(StoreError) as raised:
        await any_store.call("no_such_function", p_x=1)
    assert raised.value.code == "PGRST202"


async def test_an_unknown_argument_is_a_store_error(any_store: Store) -> None:
    with pytest.raises(StoreError, match="takes no argument p_nope"):
        await any_store.call("upsert_guests", p_nope=[])


async def test_a_database_error_carries_its_sqlstate(any_store: Store) -> None:
    with pytest.raises(StoreError) as raised:
        await any_store.call("upsert_guests", p_rows={"not": "an array"})
    assert raised.value.code == "22023"


async def test_the_supabase_transport_runs_with_the_role_of_its_key(
    seeded_database_url: str,
) -> None:
    with serve_in_thread(postgrest_double.create_app(seeded_database_url)) as server:
        anon = Store(
            await SupabaseTransport.connect(server.http_url, postgrest_double.make_jwt("anon"))
        )
        try:
            with pytest.raises(StoreError) as raised:
                await anon.upsert("guests", [])
        finally:
            await anon.aclose()
    assert raised.value.code == "42501"
