"""docs/FRONTEND.md is a contract: each documented query, run as staff and as an admin, returns
its enterprise's (or chain's) rows only, and each write succeeds for the enterprise's admin only.
The queries are parsed from the document, so the document and the test cannot drift apart."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from shared.quality.rules import DEFAULT_RULES
from shared.quality.rules_file import entry_of
from tests.quality.conftest import enable_rules, insert_profile
from tests.support.rows import CHAIN_ID, ENTERPRISE_ID, OTHER_CHAIN_ID, OTHER_ENTERPRISE_ID
from tests.support.tenancy import add_user, as_role, seed_tenancy

FRONTEND_MD = Path(__file__).resolve().parents[2] / "docs" / "FRONTEND.md"
BLOCK = re.compile(r"```(js|sql)\n(.*?)```", re.DOTALL)
CONTRACT = re.compile(r"^-- contract: (reads|admin writes|staff writes) · (.+)$")
PARAMETER = re.compile(r"(?<![:\w]):([a-z_]+)\b")
OWNER_COLUMNS = ("enterprise_id", "chain_id", "scope_id")


@dataclass(frozen=True)
class Contract:
    name: str
    mode: str
    sql: str


def contracts() -> list[Contract]:
    """The SQL blocks of FRONTEND.md, each following its supabase-js block."""
    blocks = BLOCK.findall(FRONTEND_MD.read_text(encoding="utf-8"))
    assert blocks[-1][0] == "sql", "the last supabase-js block has its SQL too"
    found = []
    for (kind, _), (next_kind, sql) in itertools.pairwise(blocks):
        if kind == "js":
            assert next_kind == "sql", "every supabase-js block is followed by its SQL"
            first, _, body = sql.partition("\n")
            match = CONTRACT.match(first)
            assert match, f"an SQL block starts with '-- contract: ...': {first}"
            found.append(Contract(match.group(2), match.group(1), PARAMETER.sub(r"%(\1)s", body)))
    return found


CONTRACTS = contracts()


def test_the_document_has_a_query_for_every_screen() -> None:
    names = {c.name for c in CONTRACTS}
    assert len(names) == len(CONTRACTS)
    for expected in (
        "guest list scores",
        "profile history",
        "arrivals at risk",
        "duplicate pairs",
        "duplicate decision",
        "duplicate decisions",
        "dry run",
        "enable",
        "rescore pass",
        "sync status",
    ):
        assert expected in names
    assert sum(c.mode == "admin writes" for c in CONTRACTS) >= 5


@dataclass(frozen=True)
class Tenant:
    enterprise: str
    chain: str
    guest: str
    twin: str
    draft: str

    def params(self) -> dict[str, Any]:
        rules = [entry_of(r) for r in DEFAULT_RULES[:3]]
        return {
            "enterprise_id": self.enterprise,
            "chain_id": self.chain,
            "guest_id": self.guest,
            "twin_id": self.twin,
            "rule_set_id": self.draft,
            "rules": json.dumps(rules),
            # the paged calls: the first page or lane of at most this many guests
            "page": None,
            "limit": 100_000,
            "totals": None,
            "rescore_limit": 0,
        }


def one(conn: psycopg.Connection, sql: str, *params: Any) -> Any:
    row = conn.execute(sql, params).fetchone()
    assert row is not None
    return row[0]


def seed_tenant(conn: psycopg.Connection, enterprise: str, chain: str) -> Tenant:
    """Scores, history, gaps, an arrival at risk, a duplicate pair, an enrichment, a conflict,
    a run, a quarantined record, a poll checkpoint and a draft, all of one enterprise."""
    enable_rules(conn, enterprise, [r.model_dump() for r in DEFAULT_RULES])
    guest = insert_profile(conn, {"last_name": "Novák", "first_name": "Jan"}, chain_id=chain)
    twin = insert_profile(conn, {"last_name": "Novak", "first_name": "Jan"}, chain_id=chain)
    conn.execute("select public.quality_rescore(%s)", (enterprise,))
    conn.execute("update public.guests set email = 'jan@example.com' where mews_id = %s", (guest,))
    conn.execute("select public.quality_rescore(%s)", (enterprise,))
    conn.execute(
        "insert into public.reservations (enterprise_id, mews_id, account_id, account_type, state,"
        " scheduled_start_utc, scheduled_end_utc, mews_updated_utc, raw, raw_hash)"
        " values (%s, gen_random_uuid(), %s, 'Customer', 'Confirmed', now() + interval '1 day',"
        " now() + interval '3 days', now(), '{}', 'x')",
        (enterprise, twin),
    )
    low, high = sorted([guest, twin])
    conn.execute(
        "insert into public.guest_duplicates (chain_id, guest_a, guest_b, evidence, probability,"
        " match_weight) values (%s, %s, %s, %s, 0.97, 25.0)",
        (chain, low, high, Jsonb([{"field": "phone", "level": "exact", "weight": 8.0}])),
    )
    conn.execute(
        "insert into public.guest_enrichments (chain_id, guest_mews_id, field, value, source, rule)"
        " values (%s, %s, 'nationality_code', 'CZ', 'identity_document.IssuingCountryCode',"
        " 'nationality_from_document')",
        (chain, guest),
    )
    conn.execute(
        "insert into public.conflict_log (chain_id, guest_mews_id, field, local_value, mews_value,"
        " resolution) values (%s, %s, 'email', '\"a@x.cz\"', '\"b@x.cz\"', 'mews_won')",
        (chain, guest),
    )
    conn.execute(
        "insert into public.sync_runs (job, scope_id, status, finished_at)"
        " values ('backfill', %s, 'succeeded', now())",
        (chain,),
    )
    conn.execute(
        "insert into public.quarantine (entity, scope_id, mews_id, reason) values"
        " ('reservations', %s, 'r1', 'unreadable')",
        (enterprise,),
    )
    conn.execute(
        "insert into public.sync_checkpoints (scope_id, entity, phase, high_water_utc)"
        " values (%s, 'customers', 'poll', now())",
        (chain,),
    )
    # a pair decided already (the other pair stays a suggestion)
    third = insert_profile(conn, {"last_name": "Nováková", "first_name": "Jana"}, chain_id=chain)
    one(conn, "select public.duplicate_decide(%s, %s, %s, 'different')", chain, twin, third)
    draft = str(one(conn, "select public.quality_draft_rule_set(%s, 'contract')", enterprise)["id"])
    return Tenant(enterprise, chain, guest, twin, draft)


@dataclass(frozen=True)
class World:
    mine: Tenant
    theirs: Tenant
    users: dict[str, str]


@pytest.fixture(scope="module")
def world(database_factory: Any) -> Iterator[tuple[psycopg.Connection, World]]:
    name = database_factory.create()
    try:
        with psycopg.connect(database_factory.url_of(name), autocommit=True) as conn:
            seed_tenancy(conn)
            mine = seed_tenant(conn, ENTERPRISE_ID, CHAIN_ID)
            theirs = seed_tenant(conn, OTHER_ENTERPRISE_ID, OTHER_CHAIN_ID)
            users = {
                role: add_user(conn, enterprise_id=ENTERPRISE_ID, role=role)
                for role in ("staff", "admin")
            }
            yield conn, World(mine, theirs, users)
    finally:
        database_factory.drop(name)


def rows(conn: psycopg.Connection, user: str, contract: Contract, tenant: Tenant) -> list[Any]:
    with as_role(conn, "authenticated", user):
        cursor = conn.execute(contract.sql, tenant.params())
        columns = [c.name for c in cursor.description or []]
        found = cursor.fetchall()
    if contract.mode == "reads":
        assert columns[0] in OWNER_COLUMNS, f"{contract.name}: the first column says whose a row is"
    return found


def owners(found: list[Any]) -> set[str]:
    return {str(row[0]) for row in found}


READS = [c for c in CONTRACTS if c.mode == "reads"]
WRITES = [c for c in CONTRACTS if c.mode == "admin writes"]
STAFF_WRITES = [c for c in CONTRACTS if c.mode == "staff writes"]


@pytest.mark.parametrize("role", ["staff", "admin"])
@pytest.mark.parametrize("contract", READS, ids=[c.name for c in READS])
def test_a_documented_read_returns_the_users_enterprise_rows_only(
    world: tuple[psycopg.Connection, World], contract: Contract, role: str
) -> None:
    conn, w = world
    allowed = {w.mine.enterprise, w.mine.chain}
    own = rows(conn, w.users[role], contract, w.mine)
    asked_for_theirs = rows(conn, w.users[role], contract, w.theirs)
    assert own, f"{contract.name}: the seed gives the query something to return"
    assert owners(own) <= allowed
    assert owners(asked_for_theirs) <= allowed


@pytest.mark.parametrize("contract", WRITES, ids=[c.name for c in WRITES])
def test_a_documented_write_succeeds_for_the_enterprises_admin(
    world: tuple[psycopg.Connection, World], contract: Contract
) -> None:
    conn, w = world
    assert rows(conn, w.users["admin"], contract, w.mine) != []


def refused_or_nothing(
    conn: psycopg.Connection, user: str, contract: Contract, tenant: Tenant
) -> bool:
    try:
        found = rows(conn, user, contract, tenant)
    except (psycopg.errors.InsufficientPrivilege, psycopg.errors.InvalidParameterValue):
        return True  # not theirs: refused, or not even visible
    return found == [] or all(row[0] is None for row in found)


@pytest.mark.parametrize("contract", WRITES, ids=[c.name for c in WRITES])
def test_a_documented_write_is_refused_to_staff_and_to_other_enterprises_admins(
    world: tuple[psycopg.Connection, World], contract: Contract
) -> None:
    conn, w = world
    assert refused_or_nothing(conn, w.users["staff"], contract, w.mine)
    assert refused_or_nothing(conn, w.users["admin"], contract, w.theirs)


@pytest.mark.parametrize("role", ["staff", "admin"])
@pytest.mark.parametrize("contract", STAFF_WRITES, ids=[c.name for c in STAFF_WRITES])
def test_a_documented_staff_write_succeeds_for_the_hotels_people_only(
    world: tuple[psycopg.Connection, World], contract: Contract, role: str
) -> None:
    conn, w = world
    assert rows(conn, w.users[role], contract, w.mine) != []
    assert refused_or_nothing(conn, w.users[role], contract, w.theirs)
