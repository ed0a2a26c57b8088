"""Fixtures shared by the whole suite: a real PostgreSQL with the real migrations."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from shared.db.store import PsycopgTransport, Store
from tests.support.databases import DatabaseFactory, test_server


@pytest.fixture(scope="session")
def database_factory() -> Iterator[DatabaseFactory]:
    """One server for the run, with a template database that has every migration applied."""
    with test_server() as server_url:
        factory = DatabaseFactory(server_url)
        factory.create_template()
        try:
            yield factory
        finally:
            factory.drop_all()


@pytest.fixture
def database_url(database_factory: DatabaseFactory) -> Iterator[str]:
    """A fresh, fully migrated database for one test."""
    name = database_factory.create()
    try:
        yield database_factory.url_of(name)
    finally:
        database_factory.drop(name)


@pytest.fixture
def empty_database_url(database_factory: DatabaseFactory) -> Iterator[str]:
    """A fresh database with nothing applied (for migration runner tests)."""
    name = database_factory.create_empty()
    try:
        yield database_factory.url_of(name)
    finally:
        database_factory.drop(name)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """The psycopg store (as service_role) on a fresh database."""
    store = Store(await PsycopgTransport.connect(database_url, max_size=4))
    try:
        yield store
    finally:
        await store.aclose()
