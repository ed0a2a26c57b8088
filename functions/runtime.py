"""What every Cloud Function instance shares: settings, logging, one event loop, one store.

functions-framework calls handlers synchronously (Flask). The domain code is async, so each
instance keeps one event loop on a background thread and one store (connection pool or Supabase
client) on it, created on first use and reused by every request the instance serves. Handlers
call :func:`run` with a coroutine.

Tests build a fresh runtime per test with :func:`reset` (and settings overrides).

Invalid settings (e.g. a malformed TOKEN_ENCRYPTION_KEY) are a :class:`ConfigurationError`: one
line naming the variable, never its value. :func:`preflight` raises it at start-up
(``functions/main.py``); a handler whose runtime cannot be built answers it as a JSON 500, and
it is logged once per process.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from shared.logs import configure_logging, get_logger
from shared.settings import Settings, SettingsError, load_settings, secret_values

if TYPE_CHECKING:
    from shared.db.store import Store

T = TypeVar("T")

log = get_logger(__name__)


NO_DATABASE = (
    "no database configured: set DATABASE_URL, or SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY"
)


class ConfigurationError(RuntimeError):
    """The deployment's configuration is invalid; the message is one line, without secrets."""


def preflight() -> None:
    """Load the settings from the environment once, so that an invalid configuration (such as
    a malformed TOKEN_ENCRYPTION_KEY) stops an instance at start-up with a clear message."""
    try:
        load_settings()
    except SettingsError as exc:
        raise ConfigurationError(str(exc)) from None


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
        """The instance's store, opened on first use. Raises :class:`StoreError` when the
        database cannot be reached, :class:`ConfigurationError` when it is not configured
        coherently."""
        async with self._store_lock:
            if self._store is None:
                from shared.db.connect import open_store  # the driver: only when first used

                if self.settings.database_url is None and not self.settings.supabase_url:
                    # the embedded database is for laptops; a function has no disk to keep it
                    raise _reported_once(ConfigurationError(NO_DATABASE))
                try:
                    self._store = await open_store(self.settings)
                except ValueError as exc:  # e.g. SUPABASE_URL without its service-role key
                    raise _reported_once(ConfigurationError(str(exc))) from None
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
_reported: set[str] = set()  # configuration errors already logged by this process


def runtime() -> Runtime:
    """The process's runtime; reads the environment on first use (never at import).

    Raises :class:`ConfigurationError` when the settings are invalid (logged once).
    """
    global _runtime  # noqa: PLW0603 - one runtime per process is the point
    with _lock:
        if _runtime is None:
            _runtime = Runtime(_settings())
        return _runtime


def reset(**overrides: object) -> Runtime:
    """Replace the process's runtime (tests: settings overrides such as ``database_url``).
    Invalid settings leave no runtime (the next :func:`runtime` reads the environment again)."""
    global _runtime  # noqa: PLW0603
    with _lock:
        if _runtime is not None:
            _runtime.close()
            _runtime = None
        _reported.clear()
        _runtime = Runtime(_settings(**overrides))
        return _runtime


def _reported_once(error: ConfigurationError) -> ConfigurationError:
    """Log a configuration error the first time this process meets it; return it."""
    if str(error) not in _reported:
        _reported.add(str(error))
        log.error("invalid configuration", error=str(error))
    return error


def _settings(**overrides: object) -> Settings:
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        raise _reported_once(ConfigurationError(str(exc))) from None
    configure_logging(
        level=settings.log_level, json=settings.log_json, secrets=secret_values(settings)
    )
    return settings


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on this process's runtime."""
    return runtime().run(coro)
