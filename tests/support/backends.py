"""Losing database connections on purpose, at a known point and without sleeps: a second
connection holds a table locked, waits until a guesthub backend is blocked on it inside a given
API function (the condition), terminates those backends (``pg_terminate_backend``), optionally
refuses new connections to the database, then lets go of the lock."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

WAITING = (
    "select pid from pg_stat_activity where datname = %s and application_name = 'guesthub'"
    " and wait_event_type = 'Lock' and query like %s"
)


@contextmanager
def terminated_in(
    database_url: str,
    fn: str,
    *,
    table: str,
    mode: str = "exclusive",
    refuse_new: bool = False,
) -> Iterator[list[int]]:
    """While the block runs: the first time a guesthub backend waits for ``table`` (locked in
    ``mode``) inside ``fn``, it is terminated (every such backend is); with ``refuse_new`` the
    database then accepts no new connection until the block ends. Yields the pids terminated."""
    dbname = conninfo_to_dict(database_url)["dbname"]
    terminated: list[int] = []
    locked = threading.Event()
    failure: list[BaseException] = []

    def observe() -> None:
        try:
            with (
                psycopg.connect(database_url) as locker,
                psycopg.connect(database_url, dbname="postgres", autocommit=True) as admin,
            ):
                locker.execute(
                    sql.SQL("lock table {} in {} mode").format(
                        sql.Identifier("public", table), sql.SQL(mode)
                    )
                )
                locked.set()
                waiting: list[int] = []
                while not waiting:
                    admin.execute("select pg_sleep(0.02)")
                    rows = admin.execute(WAITING, (dbname, f"%{fn}%")).fetchall()
                    waiting = [int(r[0]) for r in rows]
                if refuse_new:
                    admin.execute(allow_connections(dbname, allow=False))
                for pid in waiting:
                    admin.execute("select pg_terminate_backend(%s)", (pid,))
                terminated.extend(waiting)
                locker.rollback()
        except BaseException as exc:  # reported when the block ends
            failure.append(exc)
            locked.set()

    thread = threading.Thread(target=observe, daemon=True)
    thread.start()
    locked.wait(30)
    try:
        yield terminated
    finally:
        thread.join(60)
        if refuse_new:
            with psycopg.connect(database_url, dbname="postgres", autocommit=True) as admin:
                admin.execute(allow_connections(dbname, allow=True))
        if failure:
            raise failure[0]


def allow_connections(dbname: str, *, allow: bool) -> sql.Composed:
    return sql.SQL("alter database {} allow_connections {}").format(
        sql.Identifier(dbname), sql.SQL("true" if allow else "false")
    )
