"""The store's two transports fail the same way, with the database's reason."""

from __future__ import annotations

import psycopg
import pytest

from shared.db.connect import open_store
from shared.db.store import Store, StoreError, SupabaseTransport
from shared.netserve import serve_in_thread
from shared.settings import load_settings
from tests.support import postgrest_double
from tests.support.rows import CHAIN_ID

pytestmark = pytest.mark.anyio


async def test_an_unknown_function_is_a_store_error(any_store: Store) -> None:
    with pytest.raises(StoreError) as raised:
        await any_store.call("no_such_function", p_x=1)
    assert raised.value.code == "PGRST202"


async def test_an_unknown_argument_is_a_store_error(any_store: Store) -> None:
    with pytest.raises(StoreError, match="takes no argument p_nope"):
        await any_store.call("upsert_guests", p_nope=[])


async def test_a_function_created_while_the_store_runs_is_found_with_its_arguments(
    store: Store, database_url: str
) -> None:
    """A migration applied while a service runs: a call before it fails, the first call after
    it finds the function and its arguments (nothing wrong remembered), a function of no
    arguments too; whether it can write is known (a read-only one may be repeated)."""
    with pytest.raises(StoreError) as missing:
        await store.call("added_later", p_n=1)
    assert missing.value.code == "PGRST202"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "create function public.added_later(p_n integer) returns integer"
            " language sql stable as $$ select p_n + 1 $$"
        )
        conn.execute(
            "create function public.added_later_bare() returns integer"
            " language sql as $$ select 7 $$"
        )
        conn.execute("grant execute on function public.added_later(integer) to service_role")
        conn.execute("grant execute on function public.added_later_bare() to service_role")
    assert await store.call("added_later", p_n=1) == 2
    assert await store.call("added_later_bare") == 7
    with pytest.raises(StoreError, match="takes no argument p_x"):
        await store.call("added_later_bare", p_x=1)


async def test_a_database_error_carries_its_sqlstate(any_store: Store) -> None:
    with pytest.raises(StoreError) as raised:
        await any_store.call("upsert_guests", p_scope_id=CHAIN_ID, p_records={"not": "an array"})
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
                await anon.call("upsert_guests", p_scope_id=CHAIN_ID, p_records=[])
        finally:
            await anon.aclose()
    assert raised.value.code == "42501"


async def test_the_service_runs_under_a_statement_timeout(database_url: str) -> None:
    """A call that runs too long is cancelled by the server, as Supabase's API roles are."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "create function public.slow_probe() returns jsonb language sql set search_path = ''"
            " as $$ select pg_sleep(2); select to_jsonb(current_setting('statement_timeout')) $$;"
            " grant execute on function public.slow_probe() to service_role"
        )
    store = await open_store(
        load_settings(database_url=database_url, database_statement_timeout_seconds=0.3)
    )
    try:
        with pytest.raises(StoreError) as cancelled:
            await store.call("slow_probe")
    finally:
        await store.aclose()
    assert cancelled.value.code == "57014"
