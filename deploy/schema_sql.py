"""Write supabase/schema.sql: the schema as the migrations leave it, read from the catalogue of a
freshly migrated database, so a reader opens one file instead of following every migration.

Schemas ``app`` and ``public`` (what Supabase itself provides is supabase/bootstrap/): every
table with its columns, constraints, indexes, row-level security, policies, triggers and
grants (per column where grants are per column), every view and sequence, and every function
as it is now (``pg_get_functiondef``) with who may execute it. Everything is sorted by name and
nothing volatile (oids, statistics, sequence values) is written, so the file changes only when
the schema does. tests/db/test_schema_sql.py compares it with a freshly migrated database.

    make schema                               # the same as:
    python -m deploy.schema_sql supabase/schema.sql

The database is a temporary one on ``SCHEMA_SERVER_URL`` if set, else on 127.0.0.1:5432 when it
answers, else on an embedded server started for the run; it is dropped afterwards.
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

SCHEMAS = ("app", "public")
TARGET = Path(__file__).resolve().parents[1] / "supabase" / "schema.sql"
LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
COMMAND = "make schema"
HEADER = f"""\
-- The schema as the migrations leave it: generated from a freshly migrated database's catalogue
-- by `{COMMAND}` (deploy/schema_sql.py). Do not edit: change the schema with a new migration in
-- supabase/migrations/, then run `{COMMAND}`; tests/db/test_schema_sql.py fails while this file
-- is stale. What Supabase provides (roles, the auth schema) is in supabase/bootstrap/.
-- Each object's grants list every role but its owner that holds a privilege on it (`public`:
-- every role); a function without a grant to `public` is executable by the listed roles only.
"""
# table privileges in the order Postgres lists them
PRIVILEGE_ORDER = (
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "TRUNCATE",
    "REFERENCES",
    "TRIGGER",
    "USAGE",
    "CREATE",
    "EXECUTE",
)


def render(conn: psycopg.Connection[Any]) -> str:
    """The schema of the database ``conn`` is connected to, as stable SQL text (every name
    qualified with its schema: the search path is empty while it reads)."""
    (path,) = conn.execute("select current_setting('search_path')").fetchone() or ("",)
    conn.execute("select set_config('search_path', '', false)")
    try:
        return _render(conn)
    finally:
        conn.execute("select set_config('search_path', %s, false)", (path,))


def _render(conn: psycopg.Connection[Any]) -> str:
    parts = [HEADER, _migrations(conn)]
    for schema in SCHEMAS:
        parts.append(_banner(f"schema {schema}"))
        parts.append(_schema(conn, schema))
        for name, oid in _rows(conn, _RELATIONS, (schema, ["r", "p"])):
            parts.append(_table(conn, name, oid))
        for name, oid in _rows(conn, _RELATIONS, (schema, ["v", "m"])):
            parts.append(_view(conn, name, oid))
        for name, oid in _rows(conn, _SEQUENCES, (schema,)):
            parts.append(_sequence(conn, name, oid))
        for signature, oid in _rows(conn, _FUNCTIONS, (schema,)):
            parts.append(_function(conn, signature, oid))
    text = "\n".join(part.rstrip("\n") + "\n" for part in parts if part)
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


_RELATIONS = """
select c.oid::regclass::text, c.oid from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = %s and c.relkind = any (%s::"char"[]) order by c.relname
"""
_SEQUENCES = """
select c.oid::regclass::text, c.oid from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = %s and c.relkind = 'S'
  and not exists (select from pg_depend d where d.objid = c.oid and d.deptype = 'i')
order by c.relname
"""
_FUNCTIONS = """
select p.oid::regprocedure::text, p.oid from pg_proc p join pg_namespace n on n.oid = p.pronamespace
where n.nspname = %s
  and not exists (select from pg_depend d where d.objid = p.oid and d.deptype = 'e')
order by p.proname, p.oid::regprocedure::text
"""


def _rows(conn: psycopg.Connection[Any], query: str, params: Sequence[Any]) -> list[Any]:
    return list(conn.execute(query, params).fetchall())


def _banner(title: str) -> str:
    return f"\n-- {'=' * 96}\n-- {title}\n-- {'=' * 96}\n"


def _migrations(conn: psycopg.Connection[Any]) -> str:
    rows = _rows(
        conn,
        "select version || '_' || name from supabase_migrations.schema_migrations order by version",
        (),
    )
    last = rows[-1][0] if rows else "none"
    return f"-- {len(rows)} migrations applied; the last: {last}.sql\n"


def _schema(conn: psycopg.Connection[Any], schema: str) -> str:
    lines = [] if schema == "public" else [f"create schema {schema};"]
    acl = _acl(
        conn,
        "select nspacl, acldefault('n', nspowner) from pg_namespace where nspname = %s",
        schema,
    )
    lines += [f"grant {privileges} on schema {schema} to {grantee};" for grantee, privileges in acl]
    lines += _comment(
        conn,
        f"schema {schema}",
        "select obj_description(oid, 'pg_namespace') from pg_namespace where nspname = %s",
        schema,
    )
    return "\n".join(lines)


def _table(conn: psycopg.Connection[Any], name: str, oid: int) -> str:
    lines = [f"-- {name}", f"create table {name} (", ",\n".join(_columns(conn, oid)), ");"]
    options = _rows(
        conn, "select unnest(reloptions) from pg_class where oid = %s order by 1", (oid,)
    )
    if options:
        lines.append(f"alter table {name} set ({', '.join(o for (o,) in options)});")
    for constraint, definition in _rows(
        conn,
        "select conname, pg_get_constraintdef(oid, true) from pg_constraint"
        " where conrelid = %s and contype <> 'n'"  # not null (PostgreSQL 18): in the column
        " order by array_position(array['p', 'u', 'x', 'f', 'c']::\"char\"[], contype), conname",
        (oid,),
    ):
        lines.append(f"alter table {name} add constraint {_ident(constraint)} {definition};")
    for (definition,) in _rows(
        conn,
        "select pg_get_indexdef(i.indexrelid) from pg_index i join pg_class c on c.oid = i.indexrelid"
        " where i.indrelid = %s"
        "   and not exists (select from pg_constraint k where k.conindid = i.indexrelid and k.conrelid = i.indrelid)"
        " order by c.relname",
        (oid,),
    ):
        lines.append(f"{definition};")
    (enabled, forced), *_ = _rows(
        conn, "select relrowsecurity, relforcerowsecurity from pg_class where oid = %s", (oid,)
    )
    if enabled:
        lines.append(f"alter table {name} enable row level security;")
    if forced:
        lines.append(f"alter table {name} force row level security;")
    lines += _policies(conn, name, oid)
    for (definition,) in _rows(
        conn,
        "select pg_get_triggerdef(oid, true) from pg_trigger where tgrelid = %s and not tgisinternal"
        " order by tgname",
        (oid,),
    ):
        lines.append(f"{definition};")
    for (publication,) in _rows(
        conn,
        "select p.pubname from pg_publication_rel r join pg_publication p on p.oid = r.prpubid"
        " where r.prrelid = %s order by p.pubname",
        (oid,),
    ):
        lines.append(f"alter publication {_ident(publication)} add table {name};")
    lines += _relation_grants(conn, name, oid)
    lines += _comments_of(conn, name, oid)
    return "\n".join(lines)


def _columns(conn: psycopg.Connection[Any], oid: int) -> list[str]:
    defs = []
    for column, type_, not_null, default, identity, generated in _rows(
        conn,
        """
        select a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid, true), a.attidentity, a.attgenerated
        from pg_attribute a left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
        where a.attrelid = %s and a.attnum > 0 and not a.attisdropped order by a.attnum
        """,
        (oid,),
    ):
        text = f"    {_ident(column)} {type_}"
        if generated == "s":
            text += f" generated always as ({default}) stored"
        elif default is not None:
            text += f" default {default}"
        if identity:
            text += f" generated {'always' if identity == 'a' else 'by default'} as identity"
        if not_null:
            text += " not null"
        defs.append(text)
    return defs


def _policies(conn: psycopg.Connection[Any], name: str, oid: int) -> list[str]:
    lines = []
    for policy, permissive, command, roles, using, check in _rows(
        conn,
        """
        select p.polname, p.polpermissive, p.polcmd,
               array(select case when r = 0 then 'public' else r::regrole::text end
                     from unnest(p.polroles) r order by 1),
               pg_get_expr(p.polqual, p.polrelid, true), pg_get_expr(p.polwithcheck, p.polrelid, true)
        from pg_policy p where p.polrelid = %s order by p.polname
        """,
        (oid,),
    ):
        text = (
            f"create policy {_ident(policy)} on {name} as"
            f" {'permissive' if permissive else 'restrictive'} for {_COMMANDS[command]}"
            f" to {', '.join(roles)}"
        )
        if using is not None:
            text += f"\n    using ({using})"
        if check is not None:
            text += f"\n    with check ({check})"
        lines.append(text + ";")
    return lines


_COMMANDS = {"r": "select", "a": "insert", "w": "update", "d": "delete", "*": "all"}


def _view(conn: psycopg.Connection[Any], name: str, oid: int) -> str:
    (kind, options, definition), *_ = _rows(
        conn,
        "select relkind, reloptions, pg_get_viewdef(oid, true) from pg_class where oid = %s",
        (oid,),
    )
    what = "materialized view" if kind == "m" else "view"
    with_ = f" with ({', '.join(sorted(options))})" if options else ""
    lines = [f"-- {name}", f"create {what} {name}{with_} as", definition.rstrip().rstrip(";") + ";"]
    lines += _relation_grants(conn, name, oid)
    lines += _comments_of(conn, name, oid, what)
    return "\n".join(lines)


def _sequence(conn: psycopg.Connection[Any], name: str, oid: int) -> str:
    lines = [f"create sequence {name};"]
    lines += _relation_grants(conn, name, oid, "sequence")
    return "\n".join(lines)


def _function(conn: psycopg.Connection[Any], signature: str, oid: int) -> str:
    (definition, kind), *_ = _rows(
        conn, "select pg_get_functiondef(oid), prokind from pg_proc where oid = %s", (oid,)
    )
    what = "procedure" if kind == "p" else "function"
    lines = [f"-- {signature}", definition.rstrip() + ";"]
    acl = _acl(conn, "select proacl, acldefault('f', proowner) from pg_proc where oid = %s", oid)
    lines += [
        f"grant {privileges} on {what} {signature} to {grantee};" for grantee, privileges in acl
    ]
    lines += _comment(conn, f"{what} {signature}", "select obj_description(%s, 'pg_proc')", oid)
    return "\n".join(lines)


def _relation_grants(
    conn: psycopg.Connection[Any], name: str, oid: int, what: str = "table"
) -> list[str]:
    default = "s" if what == "sequence" else "r"
    acl = _acl(
        conn, f"select relacl, acldefault('{default}', relowner) from pg_class where oid = %s", oid
    )
    lines = [f"grant {privileges} on {what} {name} to {grantee};" for grantee, privileges in acl]
    for grantee, privilege, columns in _rows(
        conn,
        """
        select case when x.grantee = 0 then 'public' else x.grantee::regrole::text end,
               lower(x.privilege_type), array_agg(quote_ident(a.attname::text) order by a.attnum)
        from pg_attribute a cross join lateral aclexplode(a.attacl) x
        where a.attrelid = %s and a.attacl is not null and not a.attisdropped
        group by 1, 2 order by 1, 2
        """,
        (oid,),
    ):
        lines.append(f"grant {privilege} ({', '.join(columns)}) on {what} {name} to {grantee};")
    return lines


def _acl(conn: psycopg.Connection[Any], query: str, key: Any) -> list[tuple[str, str]]:
    """(grantee, "select, insert") for every role but the owner, from the object's ACL (its
    default ACL when none was ever granted)."""
    rows = _rows(
        conn,
        f"""
        with object as ({query})
        select case when x.grantee = 0 then 'public' else x.grantee::regrole::text end,
               array_agg(x.privilege_type::text)
        from object o cross join lateral aclexplode(coalesce(o.{_first_column(query)}, o.acldefault)) x
        where x.grantee <> x.grantor or x.grantee = 0
        group by 1 order by 1
        """,
        (key,),
    )
    return [
        (grantee, ", ".join(p.lower() for p in PRIVILEGE_ORDER if p in privileges))
        for grantee, privileges in rows
    ]


def _first_column(query: str) -> str:
    return query.split("select ", 1)[1].split(",", 1)[0].strip()


def _comments_of(
    conn: psycopg.Connection[Any], name: str, oid: int, what: str = "table"
) -> list[str]:
    lines = _comment(conn, f"{what} {name}", "select obj_description(%s, 'pg_class')", oid)
    for column, text in _rows(
        conn,
        "select attname, col_description(attrelid, attnum) from pg_attribute"
        " where attrelid = %s and attnum > 0 and not attisdropped"
        "   and col_description(attrelid, attnum) is not null order by attnum",
        (oid,),
    ):
        lines.append(f"comment on column {name}.{_ident(column)} is {_literal(text)};")
    return lines


def _comment(conn: psycopg.Connection[Any], target: str, query: str, key: Any) -> list[str]:
    rows = _rows(conn, query, (key,))
    if not rows or rows[0][0] is None:
        return []
    return [f"comment on {target} is {_literal(rows[0][0])};"]


def _ident(name: str) -> str:
    plain = name.isidentifier() and name == name.lower() and name.isascii()
    return name if plain else '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# -- a freshly migrated database ---------------------------------------------------------


@contextmanager
def fresh_database() -> Iterator[str]:
    """The URL of a new database with every migration applied, dropped afterwards."""
    from shared.db.embedded import database_url
    from shared.db.migrations import migrate

    with _server() as server:
        name = f"guesthub_schema_{secrets.token_hex(4)}"
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        try:
            url = database_url(server, name)
            migrate(url)
            yield url
        finally:
            with psycopg.connect(server, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
                )


@contextmanager
def _server() -> Iterator[str]:
    configured = os.environ.get("SCHEMA_SERVER_URL")
    if configured:
        yield configured
        return
    try:
        with psycopg.connect(LOCAL_SERVER, connect_timeout=2):
            pass
    except psycopg.OperationalError:
        from shared.db.embedded import start_embedded, stop_embedded

        with tempfile.TemporaryDirectory(prefix="guesthub-schema-") as folder:
            try:
                yield start_embedded(Path(folder), keep_running=False)
            finally:
                stop_embedded(Path(folder))
        return
    yield LOCAL_SERVER


def main(target: Path) -> None:
    with fresh_database() as url, psycopg.connect(url) as conn:
        text = render(conn)
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target} ({len(text.splitlines())} lines)")  # noqa: T201 - a command's output


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else TARGET)
