"""`guesthub status`: one screen of sync health per enterprise, JSON for monitoring, and exit
code 6 when something needs attention — as the service, or as staff over the Supabase API."""

from __future__ import annotations

import json
from collections.abc import Iterator

import psycopg
import pytest
import typer
from typer.testing import CliRunner, Result

from shared.cli.status import ATTENTION_EXIT_CODE, register
from shared.mews.ratelimit import token_key
from shared.netserve import serve_in_thread
from tests.support import postgrest_double
from tests.support.rows import CHAIN_ID, ENTERPRISE_ID, OTHER_ENTERPRISE_ID
from tests.support.tenancy import add_user, seed_tenancy

runner = CliRunner()
TOKEN = "test-access-token"  # a made-up token whose hash the test plants


def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    app.command("version")(lambda: None)  # two commands, so `status` stays a subcommand
    return app


@pytest.fixture
def seeded(database_url: str) -> str:
    with psycopg.connect(database_url, autocommit=True) as conn:
        seed_tenancy(conn)
        conn.execute(
            "insert into public.sync_runs (job, status, finished_at) values"
            " ('poll_changes', 'succeeded', now())"
        )
        conn.execute(
            "insert into public.sync_checkpoints (scope_id, entity, phase, high_water_utc)"
            " values (%s, 'customers', 'poll', now() - interval '1 minute')",
            (CHAIN_ID,),
        )
    return database_url


def service_env(database_url: str) -> dict[str, str | None]:
    return {
        "DATABASE_URL": database_url,
        "SUPABASE_URL": None,
        "GUESTHUB_USER_JWT": None,
        "MEWS_ACCESS_TOKEN": TOKEN,
        "LOG_JSON": "true",
        "COLUMNS": "120",
    }


def invoke(args: list[str], env: dict[str, str | None]) -> Result:
    return runner.invoke(cli(), ["status", *args], env=env)


def test_a_healthy_deployment_exits_0_with_one_panel_per_enterprise(seeded: str) -> None:
    result = invoke([], service_env(seeded))
    assert result.exit_code == 0, result.output
    assert "Alpha Prague — OK" in result.stdout
    assert "Beta Lisbon — OK" in result.stdout
    assert "poll_changes" in result.stdout


def test_dead_letters_exit_6_and_say_so(seeded: str) -> None:
    with psycopg.connect(seeded, autocommit=True) as conn:
        conn.execute(
            "insert into public.event_inbox (source, enterprise_id, body_raw, body_hash, status)"
            " values ('general_webhook', %s, '{}', 'h', 'dead')",
            (ENTERPRISE_ID,),
        )
    result = invoke([], service_env(seeded))
    assert result.exit_code == ATTENTION_EXIT_CODE == 6
    assert "Alpha Prague — needs attention" in result.stdout
    assert "1 dead letter(s) in the inbox" in result.stdout
    assert "Beta Lisbon — OK" in result.stdout


def test_json_carries_the_figures_and_the_verdict(seeded: str) -> None:
    with psycopg.connect(seeded, autocommit=True) as conn:
        conn.execute("select public.token_unauthorized(%s, 'Unauthorized')", (token_key(TOKEN),))
    result = invoke(["--json", "--enterprise", ENTERPRISE_ID], service_env(seeded))
    assert result.exit_code == 6
    answer = json.loads(result.stdout)
    (alpha,) = answer["enterprises"]
    assert [a["check"] for a in alpha["attention"]] == ["token_unauthorized"]
    assert alpha["tokens"][0]["key"] == token_key(TOKEN)


def test_the_configured_token_is_named_and_its_refusal_shown(seeded: str) -> None:
    with psycopg.connect(seeded, autocommit=True) as conn:
        conn.execute("select public.token_unauthorized(%s, 'Unauthorized')", (token_key(TOKEN),))
    result = invoke(["--enterprise", ENTERPRISE_ID], service_env(seeded))
    assert result.exit_code == 6
    assert "configured token: 0 of 190 requests in the last 30 s, REFUSED (401)" in result.stdout


def test_a_limit_lowered_by_mews_429s_is_shown(seeded: str) -> None:
    key = token_key(TOKEN)
    with psycopg.connect(seeded, autocommit=True) as conn:
        for _ in range(3):
            conn.execute("select public.rate_limit_acquire(%s, 190, 30000)", (key,))
        conn.execute("select public.rate_limit_refused(%s, 1, 190, 30000)", (key,))
        (lowered,) = conn.execute(
            "select adapted_limit from public.rate_limit_state where key = %s", (key,)
        ).fetchone() or (None,)
    assert lowered is not None
    assert lowered < 190
    result = invoke(["--enterprise", ENTERPRISE_ID], service_env(seeded))
    assert f"configured token: 3 of {lowered} requests in the last 30 s" in result.stdout
    assert "(lowered from 190 by Mews' 429s since" in result.stdout


@pytest.fixture
def supabase(seeded: str) -> Iterator[str]:
    with serve_in_thread(postgrest_double.create_app(seeded)) as server:
        yield server.http_url


def test_staff_see_their_enterprise_only_and_no_token_hash(seeded: str, supabase: str) -> None:
    with psycopg.connect(seeded, autocommit=True) as conn:
        staff = add_user(conn, enterprise_id=ENTERPRISE_ID, role="staff")
        # the enterprise's connection, whose token Mews refuses (staff see only their tokens)
        conn.execute(
            "select public.connection_apply('IntegrationCreated', gen_random_uuid(), %s,"
            " 'Alpha', 'gAAAA-alpha', %s)",
            (ENTERPRISE_ID, token_key(TOKEN)),
        )
        conn.execute("select public.token_unauthorized(%s, 'Unauthorized')", (token_key(TOKEN),))
        conn.execute(
            "insert into public.event_inbox (source, enterprise_id, body_raw, body_hash, status)"
            " values ('general_webhook', %s, '{}', 'h', 'dead')",
            (OTHER_ENTERPRISE_ID,),
        )
    env = {
        "DATABASE_URL": None,
        "SUPABASE_URL": supabase,
        "SUPABASE_ANON_KEY": postgrest_double.make_jwt("anon"),
        "GUESTHUB_USER_JWT": postgrest_double.make_jwt("authenticated", sub=staff),
        "LOG_JSON": "true",
    }
    result = invoke(["--json"], env)
    assert result.exit_code == 6  # the refused token; not the other enterprise's dead letter
    answer = json.loads(result.stdout)
    assert [e["id"] for e in answer["enterprises"]] == [ENTERPRISE_ID]
    assert answer["enterprises"][0]["inbox"]["dead"] == 0
    assert token_key(TOKEN) not in result.stdout
    assert "Unauthorized" not in result.stdout
