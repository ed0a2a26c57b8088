"""The test database server: `DATABASE_URL` if set, else 127.0.0.1:5432 when it answers, else
an embedded PostgreSQL from the pip package. Each test gets a fresh database cloned from a
template that has every migration applied by the real runner, under Supabase's statement
timeouts (the bootstrap's, shared.db.migrations), with autovacuum off on every table.

Each pytest process (each xdist worker) has its own template and names; templates are migrated
one at a time per server (the API roles and their settings are cluster-wide). A clone is made
ahead of the test that takes it, and a used one is dropped behind it, by background threads:
dropping a database makes PostgreSQL checkpoint (0.1 s on an idle server, seconds on a busy one),
so a batch is dropped at once and shares its checkpoints.

`GUESTHUB_TEST_SERVER=embedded` (or `local`) forces a choice, to prove the suite passes each way.
"""

from __future__ import annotations

import itertools
import os
import secrets
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from shared.db.embedded import database_url, start_embedded, stop_embedded
from shared.db.migrations import GLOBAL_STATEMENT_TIMEOUT, migrate

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def _answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


@contextmanager
def test_server() -> Iterator[str]:
    """The URL of a server on which tests may create databases."""
    choice = os.environ.get("GUESTHUB_TEST_SERVER", "auto")
    configured = os.environ.get("DATABASE_URL")
    if choice == "auto" and configured:
        yield configured
    elif choice in ("auto", "local") and _answers(LOCAL_SERVER):
        yield LOCAL_SERVER
    elif choice == "local":
        raise RuntimeError("GUESTHUB_TEST_SERVER=local but nothing answers on 127.0.0.1:5432")
    else:
        with tempfile.TemporaryDirectory(prefix="guesthub-pg-") as data_dir:
            try:
                yield start_embedded(Path(data_dir), keep_running=False)
            finally:
                stop_embedded(Path(data_dir))  # before its folder is removed


def autovacuum_off(url: str) -> None:
    """Autovacuum off on every table (cloned with the template), whatever the server's setting:
    no test depends on when autoanalyze runs; the jobs keep their own statistics current."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "do $$ declare t regclass; begin"
            " for t in select c.oid::regclass from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            "   where c.relkind = 'r' and n.nspname in ('public', 'app', 'auth', 'supabase_migrations') loop"
            "   execute format('alter table %s set (autovacuum_enabled = off)', t);"
            " end loop; end $$"
        )


# what is left at the end is dropped with this many connections (their checkpoints coalesce)
LAST_DROPS_AT_ONCE = 8
# held in the server's maintenance database while a template is migrated: one at a time per server
TEMPLATE_LOCK = 7_264_011_300


class DatabaseFactory:
    """Creates fresh databases from a migrated template on one server; ``spares`` clones are
    kept ready, and dropped databases go ``batch`` at a time, by two background threads."""

    def __init__(self, server_url: str, *, spares: int = 1, batch: int = 4) -> None:
        self.server_url = server_url
        self.prefix = f"guesthub_test_{secrets.token_hex(3)}"
        self.template = f"{self.prefix}_tpl"
        self._numbers = itertools.count(1)
        self._spares = spares
        self._batch = batch
        self._state = threading.Condition()
        self._ready: list[str] = []  # clones of the template no test has had
        self._doomed: list[str] = []  # databases to drop
        self._closing = False
        self._errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(self.server_url, autocommit=True)

    def create_template(self) -> None:
        with self._admin() as conn:
            conn.execute("select pg_advisory_lock(%s)", (TEMPLATE_LOCK,))
            try:
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(self.template)))
                migrate(self.url_of(self.template))
                autovacuum_off(self.url_of(self.template))
            finally:
                conn.execute("select pg_advisory_unlock(%s)", (TEMPLATE_LOCK,))
        for loop in (self._make_spares, self._drop_doomed):
            thread = threading.Thread(target=self._background, args=(loop,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def url_of(self, name: str) -> str:
        return database_url(self.server_url, name)

    def create_empty(self) -> str:
        return self._create(template="template0")

    def create(self) -> str:
        """A clone of the template: a ready one, else one made now."""
        with self._state:
            name = self._ready.pop(0) if self._ready else None
            self._state.notify_all()
        return name if name is not None else self._create(template=self.template)

    def _create(self, template: str) -> str:
        name = f"{self.prefix}_{next(self._numbers)}"
        with self._admin() as conn:
            conn.execute(
                sql.SQL("create database {} template {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
            # a database's settings are not cloned with it: Supabase's global limit, again
            conn.execute(
                sql.SQL("alter database {} set statement_timeout = {}").format(
                    sql.Identifier(name), sql.Literal(GLOBAL_STATEMENT_TIMEOUT)
                )
            )
        return name

    def drop(self, name: str) -> None:
        """Dropped in the background (at the latest by :meth:`drop_all`)."""
        with self._state:
            self._doomed.append(name)
            self._state.notify_all()

    def _make_spares(self) -> None:
        """Background: keep ``spares`` clones ready."""
        while self._wait_for(lambda: len(self._ready) < self._spares):
            name = self._create(template=self.template)
            with self._state:
                self._ready.append(name)

    def _drop_doomed(self) -> None:
        """Background: drop the doomed, a batch at once."""
        while self._wait_for(lambda: bool(self._doomed)):
            with self._state:
                batch = self._doomed[: self._batch]
                del self._doomed[: len(batch)]
            self._drop_now(batch)

    def _wait_for(self, work: Callable[[], bool]) -> bool:
        """Wait until there is work (True) or the factory closes (False)."""
        with self._state:
            self._state.wait_for(lambda: self._closing or work())
            return not self._closing

    def _background(self, loop: Callable[[], None]) -> None:
        try:
            loop()
        except Exception as exc:  # raised by drop_all; create() makes its own meanwhile
            with self._state:
                self._errors.append(exc)

    def _drop_now(self, names: Iterable[str], at_once: int | None = None) -> None:
        def drop(name: str) -> None:
            with self._admin() as conn:
                conn.execute(
                    sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
                )

        names = list(names)
        workers = max(1, min(len(names), at_once or self._batch))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(drop, names))

    def drop_all(self) -> None:
        """Stop the background threads and drop every database of this factory, the template
        with them; a failure of a background thread is raised here."""
        with self._state:
            self._closing = True
            self._state.notify_all()
        for thread in self._threads:
            thread.join()
        with self._admin() as conn:
            names = [
                name
                for (name,) in conn.execute(
                    "select datname from pg_database where datname like %s",
                    (self.prefix + "\\_%",),
                ).fetchall()
            ]
        self._drop_now(names, at_once=LAST_DROPS_AT_ONCE)  # clones are independent of it
        if self._errors:
            raise RuntimeError(
                "a background thread of the test databases failed"
            ) from self._errors[0]
