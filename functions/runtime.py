"""What every Cloud Function instance shares: settings, logging, one event loop, one store.

functions-framework calls handlers synchronously (Flask). The domain code is async, so each
instance keeps one event loop on a background thread and one store (connection pool or Supabase
client) on it, created on first use and reused by every request the instance serves. Handlers
call :func:`run` with a coroutine.

Tests build a fresh runtime per test with :func:`reset` (and settings overrides).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from shared.cli.common import secret_values
from shared.db.connect import open_store
from shared.db.store import Store
from shared.logs import configure_logging
from shared.settings import Settings, load_settings

T = TypeVar("T")


class Runtime:
    """One per process: a loop thread, the settings, and lazily opened resources."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._store: Store | None = None
        self._store_lock = asyncio.Lock()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the instance's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def store(self) -> Store:
        """The instance's store, opened on first use."""
        async with self._store_lock:
            if self._store is None:
                self._store = await open_store(self.settings)
            return self._store

    def close(self) -> None:
        if self._store is not None:
            self.run(self._store.aclose())
            self._store = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


_runtime: Runtime | None = None
_lock = threading.Lock()


def runtime() -> Runtime:
    """The process's runtime; reads the environment on first use (never at import)."""
    global _runtime  # noqa: PLW0603 - one runtime per process is the point
    with _lock:
        if _runtime is None:
            settings = load_settings()
            configure_logging(
                level=settings.log_level, json=settings.log_json, secrets=secret_values(settings)
            )
            _runtime = Runtime(settings)
        return _runtime


def reset(**overrides: object) -> Runtime:
    """Replace the process's runtime (tests: settings overrides such as ``database_url``)."""
    global _runtime  # noqa: PLW0603
    with _lock:
        if _runtime is not None:
            _runtime.close()
        settings = load_settings(**overrides)
        configure_logging(
            level=settings.log_level, json=settings.log_json, secrets=secret_values(settings)
        )
        _runtime = Runtime(settings)
        return _runtime


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on this process's runtime."""
    return runtime().run(coro)
