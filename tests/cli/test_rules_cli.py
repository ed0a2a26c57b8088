"""`guesthub rules`: export, validate, dry-run, apply, enable and history round-trip a rule set
through the frontend's SQL functions, as the service (psycopg) and as a signed-in user over the
Supabase API (the PostgREST double), where row-level security decides."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import typer
from typer.testing import CliRunner, Result

from shared.cli.rules import register
from shared.netserve import serve_in_thread
from shared.quality.rules import DEFAULT_RULES
from shared.quality.rules_file import load
from tests.quality.conftest import enable_rules, insert_profile
from tests.support import postgrest_double
from tests.support.rows import CHAIN_ID, ENTERPRISE_ID, OTHER_ENTERPRISE_ID
from tests.support.tenancy import add_user, seed_tenancy

runner = CliRunner()


def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


@pytest.fixture
def seeded(database_url: str) -> str:
    with psycopg.connect(database_url, autocommit=True) as conn:
        seed_tenancy(conn)
        for enterprise in (ENTERPRISE_ID, OTHER_ENTERPRISE_ID):
            enable_rules(conn, enterprise, [r.model_dump() for r in DEFAULT_RULES])
        for name in ("Novák", "Svoboda"):
            insert_profile(conn, {"last_name": name, "phone": "+420601000000"}, chain_id=CHAIN_ID)
        conn.execute("select public.quality_rescore(%s)", (ENTERPRISE_ID,))
    return database_url


def service_env(database_url: str) -> dict[str, str | None]:
    return {
        "DATABASE_URL": database_url,
        "SUPABASE_URL": None,
        "GUESTHUB_USER_JWT": None,
        "LOG_JSON": "true",
    }


def invoke(args: list[str], env: dict[str, str | None]) -> Result:
    return runner.invoke(cli(), ["rules", *args], env={"COLUMNS": "200", **env})


def statuses(database_url: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "select status from public.quality_rule_sets where enterprise_id = %s order by version",
            (ENTERPRISE_ID,),
        ).fetchall()
    return [r[0] for r in rows]


def stricter(exported: str) -> str:
    """The exported file with phones worth more, and a duplicate threshold of its own."""
    return exported.replace(
        "  - field: phone\n    kind: required\n    severity: warning\n    weight: 15",
        "  - field: phone\n    kind: required\n    severity: warning\n    weight: 40",
    ).replace("\nrules:\n", "\nduplicates: {threshold: 0.93}\nrules:\n")


def duplicate_threshold(database_url: str) -> float | None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "select threshold from public.duplicate_settings where enterprise_id = %s",
            (ENTERPRISE_ID,),
        ).fetchone()
    return None if row is None else round(row[0], 6)


def round_trip(tmp_path: Path, env: dict[str, str | None], database_url: str) -> None:
    """export → edit → validate → dry-run → apply → enable → export: what was applied."""
    path = tmp_path / "alpha.yaml"
    exported = invoke(["export", "--enterprise", ENTERPRISE_ID, "-o", str(path)], env)
    assert exported.exit_code == 0, exported.output
    assert load(path.read_text()).rules == tuple(DEFAULT_RULES)
    assert load(path.read_text()).duplicate_threshold is None
    path.write_text(stricter(path.read_text()))
    assert load(path.read_text()).duplicate_threshold == 0.93
    assert invoke(["validate", str(path)], env).exit_code == 0

    dry = invoke(["dry-run", str(path)], env)
    assert dry.exit_code == 0, dry.output
    assert "would change" in dry.output
    assert statuses(database_url) == ["enabled"]  # the dry run's draft is gone

    applied = invoke(["apply", str(path)], env)
    assert applied.exit_code == 0, applied.output
    draft = applied.stdout.strip().splitlines()[-1]
    assert statuses(database_url) == ["enabled", "draft"]
    assert duplicate_threshold(database_url) is None  # a draft's threshold waits for enable

    enabled = invoke(["enable", draft], env)
    assert enabled.exit_code == 0, enabled.output
    assert "2 guests scored" in enabled.output
    assert statuses(database_url) == ["retired", "enabled"]

    again = invoke(["export", "--enterprise", ENTERPRISE_ID], env)
    assert load(again.stdout).rules == load(path.read_text()).rules
    assert duplicate_threshold(database_url) == 0.93
    assert load(again.stdout).duplicate_threshold == 0.93
    history = invoke(["history", "--enterprise", ENTERPRISE_ID], env)
    assert history.exit_code == 0, history.output
    assert "retired" in history.output
    assert draft[:8] in history.output


def test_a_rule_set_round_trips_as_the_service(seeded: str, tmp_path: Path) -> None:
    round_trip(tmp_path, service_env(seeded), seeded)


@pytest.fixture
def supabase(seeded: str) -> Iterator[str]:
    with serve_in_thread(postgrest_double.create_app(seeded)) as server:
        yield server.http_url


def user_env(url: str, user_id: str) -> dict[str, str | None]:
    return {
        "DATABASE_URL": None,
        "SUPABASE_URL": url,
        "SUPABASE_ANON_KEY": postgrest_double.make_jwt("anon"),
        "GUESTHUB_USER_JWT": postgrest_double.make_jwt("authenticated", sub=user_id),
        "LOG_JSON": "true",
    }


def test_a_rule_set_round_trips_as_an_admin_over_the_supabase_api(
    seeded: str, supabase: str, tmp_path: Path
) -> None:
    with psycopg.connect(seeded, autocommit=True) as conn:
        admin = add_user(conn, enterprise_id=ENTERPRISE_ID, role="admin")
    round_trip(tmp_path, user_env(supabase, admin), seeded)


def test_staff_export_but_cannot_apply_and_leave_nothing_behind(
    seeded: str, supabase: str, tmp_path: Path
) -> None:
    with psycopg.connect(seeded, autocommit=True) as conn:
        staff = add_user(conn, enterprise_id=ENTERPRISE_ID, role="staff")
    env = user_env(supabase, staff)
    path = tmp_path / "alpha.yaml"
    assert invoke(["export", "--enterprise", ENTERPRISE_ID, "-o", str(path)], env).exit_code == 0
    for command in ("apply", "dry-run"):
        refused = invoke([command, str(path)], env)
        assert refused.exit_code == 1
        assert "only admins of the enterprise may draft rules" in refused.stderr
    assert statuses(seeded) == ["enabled"]


def test_an_admin_of_another_enterprise_cannot_apply_to_this_one(
    seeded: str, supabase: str, tmp_path: Path
) -> None:
    with psycopg.connect(seeded, autocommit=True) as conn:
        other_admin = add_user(conn, enterprise_id=OTHER_ENTERPRISE_ID, role="admin")
    path = tmp_path / "alpha.yaml"
    path.write_text(invoke(["export", "--enterprise", ENTERPRISE_ID], service_env(seeded)).stdout)
    refused = invoke(["apply", str(path)], user_env(supabase, other_admin))
    assert refused.exit_code == 1
    assert statuses(seeded) == ["enabled"]


def test_validate_lists_every_problem_with_line_rule_and_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        f"enterprise: {ENTERPRISE_ID}\n"
        "rules:\n"
        "  - {field: phone, kind: required, wieght: 15}\n"
        "  - {field: first_name, kind: length, params: {min: 5, max: 2}, weight: 3}\n"
    )
    result = invoke(["validate", str(path)], {})
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{path}:3: rule 1: required rule on phone: unknown key wieght (keys: field, kind, params,"
        " severity, weight)",
        f"{path}:4: rule 2: length rule on first_name: min (5) is greater than max (2)",
    ]


def test_a_file_with_problems_is_never_sent(seeded: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"enterprise: {ENTERPRISE_ID}\ncolour: blue\nrules: []\n")
    result = invoke(["apply", str(path)], service_env(seeded))
    assert result.exit_code == 1
    assert "unknown key colour" in result.stderr
    assert statuses(seeded) == ["enabled"]


def test_a_user_jwt_without_the_supabase_settings_is_refused(tmp_path: Path) -> None:
    env = {"SUPABASE_URL": None, "GUESTHUB_USER_JWT": "x.y.z", "DATABASE_URL": None}
    result = invoke(["history", "--enterprise", ENTERPRISE_ID], env)
    assert result.exit_code == 1
    assert "needs SUPABASE_URL and SUPABASE_ANON_KEY" in result.stderr


def test_export_of_a_missing_version_says_so(seeded: str) -> None:
    result = invoke(
        ["export", "--enterprise", ENTERPRISE_ID, "--version", "9"], service_env(seeded)
    )
    assert result.exit_code == 1
    assert "no rule set of version 9" in result.stderr
