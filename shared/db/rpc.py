"""Calling a database API function by name with named arguments, as PostgREST does.

Shared by the psycopg transport and the PostgREST test double, so both build the same call:
``select public.fn(p_a => $1::jsonb, p_b => $2::text)``, arguments cast to the declared types.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson
from psycopg import sql
from psycopg.types.json import Jsonb

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")

SIGNATURE_QUERY = """
select a.name, format_type(a.type, null)
from pg_proc p
cross join lateral unnest(p.proargnames[1:p.pronargs], p.proargtypes::oid[]) as a(name, type)
where p.pronamespace = 'public'::regnamespace and p.proname = %s
"""


# One statement for what the store needs of a function: its arguments (none: one row of nulls)
# and whether it can write; no row: no such function. Two statements could see two versions of
# the catalogue (a migration creating the function between them) and remember a wrong signature.
FUNCTION_QUERY = """
select a.name, format_type(a.type, null), p.provolatile <> 'v'
from pg_proc p
left join lateral unnest(p.proargnames[1:p.pronargs], p.proargtypes::oid[]) as a(name, type)
  on true
where p.pronamespace = 'public'::regnamespace and p.proname = %s
"""


class UnknownFunctionError(LookupError):
    """No API function of that name (or it takes no such argument)."""


def check_name(name: str) -> str:
    if not _IDENT.match(name):
        raise UnknownFunctionError(f"not an API function name: {name!r}")
    return name


def build_call(
    fn: str, signature: Mapping[str, str], args: Mapping[str, Any]
) -> tuple[sql.Composed, list[Any]]:
    """The statement and parameters that call ``public.fn`` with ``args`` by name."""
    unknown = sorted(set(args) - set(signature))
    if unknown:
        raise UnknownFunctionError(f"{fn} takes no argument {', '.join(unknown)}")
    parts = [
        sql.SQL("{} => %s::{}").format(sql.Identifier(name), sql.SQL(signature[name]))
        for name in args
    ]
    statement = sql.SQL("select public.{}({})").format(
        sql.Identifier(check_name(fn)), sql.SQL(", ").join(parts)
    )
    return statement, [adapt(value) for value in args.values()]


def adapt(value: Any) -> Any:
    """JSON containers travel as jsonb; scalars as themselves."""
    if isinstance(value, dict | list):
        return Jsonb(value, dumps=_dumps)
    return value


def _dumps(value: Any) -> str:
    """orjson: pages of 1000 records with their raw JSON encode several times faster."""
    return orjson.dumps(value).decode()
