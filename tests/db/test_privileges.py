"""The database proves its own permissions: the catalogue equals supabase/privileges.yaml, and
anything new (a table, a view, a function) arrives with no privilege for any API role and fails
the comparison until someone lists it."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from shared.db.privileges import (
    ROLES,
    SCHEMAS,
    Finding,
    compare,
    load_matrix,
    read_catalogue,
    render,
)
from shared.sync.push import FIELDS as PUSHED_COLUMNS


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


def test_the_catalogue_matches_the_privilege_matrix(conn: psycopg.Connection) -> None:
    findings = compare(load_matrix(), read_catalogue(conn))
    assert findings == [], "\n".join(map(str, findings)) + (
        "\n\nThe database now has (review, then copy what is intended into"
        " supabase/privileges.yaml):\n" + render(read_catalogue(conn))
    )


def test_anon_holds_nothing_but_the_use_of_the_public_schema(conn: psycopg.Connection) -> None:
    catalogue = read_catalogue(conn)
    held = {name: entry["anon"] for name, entry in catalogue["relations"].items() if entry["anon"]}
    executable = [name for name, f in catalogue["functions"].items() if "anon" in f["execute"]]
    assert (held, executable) == ({}, [])
    assert {name: entry["anon"] for name, entry in catalogue["schemas"].items()} == {
        "public": ["usage"],
        "app": [],
    }


def test_truncate_references_and_trigger_belong_to_no_api_role(conn: psycopg.Connection) -> None:
    catalogue = read_catalogue(conn)
    held = [
        (name, role, privilege)
        for name, entry in catalogue["relations"].items()
        for role in ROLES
        for privilege in entry[role]
        if privilege.split("(")[0] in ("truncate", "references", "trigger")
    ]
    assert held == []


def test_no_api_role_may_create_objects_or_use_sequences(conn: psycopg.Connection) -> None:
    catalogue = read_catalogue(conn)
    creators = [
        (schema, role)
        for schema, entry in catalogue["schemas"].items()
        for role in ROLES
        if "create" in entry[role]
    ]
    assert (creators, catalogue["sequences_granted"]) == ([], [])


def test_every_table_has_row_level_security(conn: psycopg.Connection) -> None:
    relations = read_catalogue(conn)["relations"].items()
    assert [
        name for name, entry in relations if entry["kind"] == "table" and not entry["rls"]
    ] == []
    assert [
        name
        for name, entry in relations
        if entry["kind"] == "view" and not entry["security_invoker"]
    ] == []


def test_every_function_has_a_fixed_search_path(conn: psycopg.Connection) -> None:
    """The advisor's function_search_path_mutable, for every function of ours."""
    mutable = conn.execute(
        "select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
        " where n.nspname = any (%s) and not exists"
        " (select 1 from unnest(p.proconfig) c where c like 'search_path=%%')",
        (list(SCHEMAS),),
    ).fetchall()
    assert mutable == []


def test_staff_may_update_exactly_the_columns_that_are_pushed_to_mews(
    conn: psycopg.Connection,
) -> None:
    """One list: the grant, the push's field map and the edit trigger name the same columns."""
    granted = next(
        p
        for p in load_matrix()["relations"]["public.guests"]["authenticated"]
        if p.startswith("update(")
    )
    columns = {c.strip() for c in granted.removeprefix("update(").removesuffix(")").split(",")}
    trigger = conn.execute(
        "select prosrc from pg_proc where oid = 'app.guests_mark_local_edit()'::regprocedure"
    ).fetchone()[0]  # type: ignore[index]
    marked = {c for c in columns if f"'{c}'" in trigger}
    assert columns == set(PUSHED_COLUMNS) == marked


def new_objects_sql() -> list[str]:
    return [
        "create table public.sneaky (id int primary key, secret text)",
        "create view public.sneaky_view as select 1 as one",
        "create function public.sneaky_fn() returns int language sql set search_path = '' as $$ select 1 $$",
        "create function app.sneaky_helper() returns int language sql set search_path = '' as $$ select 1 $$",
    ]


def test_new_objects_get_no_privileges_and_fail_the_comparison(conn: psycopg.Connection) -> None:
    """What a future migration creates is closed by default (default privileges revoked, no
    EXECUTE for PUBLIC), and the matrix test names it until it is listed."""
    for statement in new_objects_sql():
        conn.execute(statement)
    catalogue = read_catalogue(conn)
    for name in ("public.sneaky", "public.sneaky_view"):
        assert [catalogue["relations"][name][role] for role in ROLES] == [[], [], []]
    for name in ("public.sneaky_fn()", "app.sneaky_helper()"):
        assert catalogue["functions"][name]["execute"] == []
    unlisted = {f.where for f in compare(load_matrix(), catalogue) if f.expected == "(no entry)"}
    assert unlisted == {
        "relations.public.sneaky",
        "relations.public.sneaky_view",
        "functions.public.sneaky_fn()",
        "functions.app.sneaky_helper()",
    }


def test_a_widened_grant_is_a_finding(conn: psycopg.Connection) -> None:
    conn.execute("grant update (raw) on public.guests to authenticated")
    conn.execute("grant execute on function public.upsert_guests(uuid,jsonb) to authenticated")
    findings = compare(load_matrix(), read_catalogue(conn))
    assert sorted(f.where for f in findings) == [
        "functions.public.upsert_guests(uuid,jsonb).execute",
        "relations.public.guests.authenticated",
    ]
    assert all(isinstance(f, Finding) and str(f) for f in findings)
