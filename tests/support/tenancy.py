"""Seed chains, enterprises, staff and memberships with a superuser connection."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from tests.support.rows import CHAIN_ID, ENTERPRISE_ID, OTHER_CHAIN_ID, OTHER_ENTERPRISE_ID


def seed_tenancy(conn: psycopg.Connection) -> None:
    """Two chains with one enterprise each."""
    conn.execute(
        "insert into public.chains (id, name) values (%s, 'Alpha Hotels'), (%s, 'Beta Resorts')",
        (CHAIN_ID, OTHER_CHAIN_ID),
    )
    conn.execute(
        "insert into public.enterprises (id, chain_id, name, time_zone) values"
        " (%s, %s, 'Alpha Prague', 'Europe/Prague'), (%s, %s, 'Beta Lisbon', 'Europe/Lisbon')",
        (ENTERPRISE_ID, CHAIN_ID, OTHER_ENTERPRISE_ID, OTHER_CHAIN_ID),
    )


def add_user(
    conn: psycopg.Connection,
    *,
    enterprise_id: str | None = None,
    chain_id: str | None = None,
    role: str = "staff",
) -> str:
    """An auth user with an app profile and one membership; returns the user id."""
    user_id = str(uuid.uuid4())
    email = f"{user_id[:8]}@hotel.example"
    conn.execute("insert into auth.users (id, email) values (%s, %s)", (user_id, email))
    conn.execute("insert into public.app_users (id, email) values (%s, %s)", (user_id, email))
    conn.execute(
        "insert into public.memberships (user_id, enterprise_id, chain_id, role)"
        " values (%s, %s, %s, %s)",
        (user_id, enterprise_id, chain_id, role),
    )
    return user_id


# A role's statement timeout as PostgREST applies it: the role's own setting (the bootstrap's
# shared.db.migrations.ROLE_STATEMENT_TIMEOUTS on a plain Postgres, the project's on Supabase),
# else the one of `authenticator`, the role PostgREST logs in as (service_role has none).
STATEMENT_TIMEOUT_QUERY = """
select coalesce(
  (select split_part(c, '=', 2) from pg_db_role_setting s cross join unnest(s.setconfig) c
    where s.setrole = (select oid from pg_roles where rolname = %(role)s)
      and s.setdatabase in (0, (select oid from pg_database where datname = current_database()))
      and split_part(c, '=', 1) = 'statement_timeout' order by s.setdatabase desc limit 1),
  (select split_part(c, '=', 2) from pg_db_role_setting s cross join unnest(s.setconfig) c
    where s.setrole = (select oid from pg_roles where rolname = 'authenticator')
      and s.setdatabase = 0 and split_part(c, '=', 1) = 'statement_timeout'),
  '0')
"""


def statement_timeout_of(conn: psycopg.Connection, role: str) -> str:
    """The statement timeout a request as ``role`` runs under (e.g. ``8s``)."""
    row = conn.execute(STATEMENT_TIMEOUT_QUERY, {"role": role}).fetchone()
    assert row is not None
    return str(row[0])


@contextmanager
def as_role(
    conn: psycopg.Connection,
    role: str,
    user_id: str | None = None,
    *,
    claims: dict[str, Any] | None = None,
) -> Iterator[psycopg.Connection]:
    """Act as PostgREST does for one request: `set local role`, the role's statement timeout,
    then the JWT claims (``claims`` replaces them whole, for forged or missing claims).

    Rolled back afterwards, so a test can try writes without leaving them behind."""
    if claims is None:
        claims = {"role": role}
        if user_id is not None:
            claims["sub"] = user_id
    timeout = statement_timeout_of(conn, role)
    tx = conn.transaction(force_rollback=True)
    with tx:
        conn.execute(psycopg.sql.SQL("set local role {}").format(psycopg.sql.Identifier(role)))
        conn.execute("select set_config('statement_timeout', %s, true)", (timeout,))
        if claims:
            conn.execute("select set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))
        yield conn
