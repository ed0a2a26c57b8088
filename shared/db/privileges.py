"""What each API role may do, read from the catalogue and compared with the matrix in the repo.

`supabase/privileges.yaml` lists, for every table and view (and column where grants are per
column), every function and every schema the database API uses, what `anon`, `authenticated`
and `service_role` may do, and every row-level security policy. :func:`read_catalogue` asks
the database itself (``has_table_privilege``, ``has_column_privilege``,
``has_function_privilege``, ``has_schema_privilege``, ``pg_policies``), so the comparison proves
the effective privileges, whatever granted them (a default privilege, PUBLIC, a forgotten grant).

A privilege is written ``select`` (the whole table) or ``update(a, b)`` (those columns only).
A function is written with its security (``invoker`` or ``definer``) and the roles that may
execute it. A new table or function without an entry, or any difference, is a finding.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import yaml

from shared.db.paths import supabase_dir

ROLES = ("anon", "authenticated", "service_role")
SCHEMAS = ("public", "app")
TABLE_PRIVILEGES = ("select", "insert", "update", "delete", "truncate", "references", "trigger")
COLUMN_PRIVILEGES = ("select", "insert", "update", "references")

Matrix = dict[str, Any]


def matrix_file() -> Path:
    return supabase_dir() / "privileges.yaml"


def load_matrix(path: Path | None = None) -> Matrix:
    data: Matrix = yaml.safe_load((path or matrix_file()).read_text(encoding="utf-8"))
    return data


_RELATIONS = """
select n.nspname || '.' || c.relname, c.oid, c.relkind::text, c.relrowsecurity,
       coalesce('security_invoker=on' = any (c.reloptions) or 'security_invoker=true' = any (c.reloptions), false)
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = any (%s) and c.relkind in ('r', 'p', 'v', 'm', 'f')
order by 1
"""
_COLUMNS = """
select attname from pg_attribute where attrelid = %s and attnum > 0 and not attisdropped order by attnum
"""
_FUNCTIONS = """
select p.oid::regprocedure::text, p.oid, p.prosecdef
from pg_proc p join pg_namespace n on n.oid = p.pronamespace
where n.nspname = any (%s) and p.prokind in ('f', 'p')
order by 1
"""
_POLICIES = """
select schemaname || '.' || tablename, policyname, lower(cmd), permissive, roles::text[]
from pg_policies where schemaname = any (%s) order by 1, 2
"""


def _relation_entry(
    conn: psycopg.Connection, oid: int, kind: str, rls: bool, invoker: bool
) -> Matrix:
    columns = [c for (c,) in conn.execute(_COLUMNS, (oid,)).fetchall()]
    entry: Matrix = {"kind": "view" if kind == "v" else "table"}
    if kind == "v":
        entry["security_invoker"] = invoker
    else:
        entry["rls"] = rls
    for role in ROLES:
        granted: list[str] = []
        for privilege in TABLE_PRIVILEGES:
            row = conn.execute(
                "select has_table_privilege(%s, %s::oid, %s)", (role, oid, privilege)
            ).fetchone()
            if row and row[0]:
                granted.append(privilege)
            elif privilege in COLUMN_PRIVILEGES:
                allowed = [
                    c
                    for c in columns
                    if conn.execute(
                        "select has_column_privilege(%s, %s::oid, %s, %s)",
                        (role, oid, c, privilege),
                    ).fetchone()[0]  # type: ignore[index]
                ]
                if allowed:
                    granted.append(f"{privilege}({', '.join(allowed)})")
        entry[role] = granted
    return entry


def read_catalogue(conn: psycopg.Connection) -> Matrix:
    """The effective privileges of the API roles, in the matrix's shape."""
    with conn.transaction():
        conn.execute("set local search_path = ''")
        schema_entries = {
            name: {
                role: [
                    p
                    for p in ("usage", "create")
                    if conn.execute(
                        "select has_schema_privilege(%s, %s, %s)", (role, name, p)
                    ).fetchone()[0]  # type: ignore[index]
                ]
                for role in ROLES
            }
            for name in SCHEMAS
        }
        relations: Matrix = {}
        for name, oid, kind, rls, invoker in conn.execute(_RELATIONS, (list(SCHEMAS),)).fetchall():
            relations[name] = _relation_entry(conn, oid, kind, rls, invoker)
        for table, policy, command, permissive, roles in conn.execute(
            _POLICIES, (list(SCHEMAS),)
        ).fetchall():
            mode = "" if permissive == "PERMISSIVE" else " restrictive"
            relations[table].setdefault("policies", {})[policy] = (
                f"{command} to {', '.join(sorted(roles))}{mode}"
            )
        functions: Matrix = {}
        for signature, oid, definer in conn.execute(_FUNCTIONS, (list(SCHEMAS),)).fetchall():
            roles_allowed = [
                role
                for role in ROLES
                if conn.execute(
                    "select has_function_privilege(%s, %s::oid, 'execute')", (role, oid)
                ).fetchone()[0]  # type: ignore[index]
            ]
            functions[signature] = {
                "security": "definer" if definer else "invoker",
                "execute": roles_allowed,
            }
        sequences = [
            name
            for (name,) in conn.execute(
                "select n.nspname || '.' || c.relname from pg_class c"
                " join pg_namespace n on n.oid = c.relnamespace"
                " where c.relkind = 'S' and n.nspname = any (%s)"
                " and exists (select 1 from unnest(%s::text[]) r"
                "   where has_sequence_privilege(r, c.oid, 'usage') or has_sequence_privilege(r, c.oid, 'select')"
                "      or has_sequence_privilege(r, c.oid, 'update'))"
                " order by 1",
                (list(SCHEMAS), list(ROLES)),
            ).fetchall()
        ]
    return {
        "schemas": schema_entries,
        "relations": relations,
        "functions": functions,
        "sequences_granted": sequences,
    }


@dataclass(frozen=True)
class Finding:
    """One difference between the matrix and the database."""

    where: str
    expected: Any
    actual: Any

    def __str__(self) -> str:
        return f"{self.where}: matrix says {self.expected!r}, database has {self.actual!r}"


def compare(expected: Matrix, actual: Matrix) -> list[Finding]:
    """Every difference, with a path a reader can find in the YAML file."""
    findings: list[Finding] = []
    _walk("", expected, actual, findings)
    return findings


def _walk(path: str, expected: Any, actual: Any, findings: list[Finding]) -> None:
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in sorted(set(expected) | set(actual)):
            where = f"{path}.{key}" if path else str(key)
            if key not in expected:
                findings.append(Finding(where, "(no entry)", actual[key]))
            elif key not in actual:
                findings.append(Finding(where, expected[key], "(nothing)"))
            else:
                _walk(where, expected[key], actual[key], findings)
        return
    normal_expected = sorted(expected) if isinstance(expected, list) else expected
    normal_actual = sorted(actual) if isinstance(actual, list) else actual
    if normal_expected != normal_actual:
        findings.append(Finding(path, expected, actual))


class _Dumper(yaml.SafeDumper):
    """Lists of names on one line, mappings as blocks: one line per role in a review diff."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)


_Dumper.add_representer(list, _represent_list)

_ORDER = ("kind", "rls", "security_invoker", "security", "execute", *ROLES, "policies")


def _ordered(value: Any) -> Any:
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: (_ORDER.index(k) if k in _ORDER else len(_ORDER), k))
        return {k: _ordered(value[k]) for k in keys}
    return value


def render(matrix: Matrix) -> str:
    """The matrix as YAML, one line per role and privilege list (for review in a diff)."""
    ordered = {
        key: _ordered(matrix[key])
        for key in ("schemas", "relations", "functions", "sequences_granted")
        if key in matrix
    }
    return yaml.dump(ordered, Dumper=_Dumper, sort_keys=False, width=1000, allow_unicode=True)
