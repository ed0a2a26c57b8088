"""Each Cloud Function through functions-framework's test client, against the real database and
the simulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import functions_framework
import psycopg
import pytest
from cryptography.fernet import Fernet

from functions import runtime
from functions.runtime import ConfigurationError, preflight
from shared.intake.events import NUL_REASON
from shared.intake.store import BODY_MAX_BYTES, MISSING_KEY
from shared.settings import INVALID_ENCRYPTION_KEY_MESSAGE
from shared.simulator.running import Simulator, running_simulator
from shared.simulator.server import SimulatorConfig
from shared.sync.entities import ENTITIES
from tests.support.fixtures import FIXTURES, load

SECRET = "hook-secret-123"
KEY = Fernet.generate_key().decode()


def client_for(name: str) -> Any:
    app = functions_framework.create_app(target=name, source=f"functions/{name}.py")
    return app.test_client()


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    with running_simulator(SimulatorConfig(customers=150, rate_limit=200)) as sim:
        yield sim


@pytest.fixture
def env(database_url: str, simulator: Simulator) -> Iterator[str]:
    runtime.reset(
        database_url=database_url,
        mews_platform_url=simulator.url,
        webhook_secret=SECRET,
        token_encryption_key=KEY,
    )
    yield database_url
    runtime.reset()


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def test_webhook_stores_then_acknowledges(env: str) -> None:
    body = (FIXTURES / "webhook_general.json").read_bytes()
    answer = client_for("mews_webhook").post(
        f"/?Token={SECRET}", data=body, content_type="application/json"
    )
    assert answer.status_code == 202
    stored = rows(
        env,
        "select id, body_raw, status, body_hash, unknown_discriminators from public.event_inbox",
    )
    assert len(stored) == 1
    assert stored[0][0] == answer.get_json()["stored"]
    assert stored[0][1] == body.decode()
    assert stored[0][2] == "pending"


@pytest.mark.parametrize("query", ["", "?Token=wrong", "?Token="])
def test_a_wrong_or_missing_token_is_401_and_nothing_is_stored(env: str, query: str) -> None:
    answer = client_for("mews_webhook").post("/" + query, data=b'{"Events": []}')
    assert answer.status_code == 401
    assert rows(env, "select count(*) from public.event_inbox") == [(0,)]


def test_a_malformed_body_is_400_with_the_reason_and_kept(env: str) -> None:
    answer = client_for("mews_webhook").post(f"/?Token={SECRET}", data=b'{"Events": [{"Value": 1}]')
    assert answer.status_code == 400
    assert "not JSON" in answer.get_json()["error"]
    kept = rows(env, "select body_raw, status, error from public.event_inbox")
    assert kept == [('{"Events": [{"Value": 1}]', "rejected", answer.get_json()["error"])]


def test_unknown_discriminators_are_stored_and_reported(env: str) -> None:
    body = {
        "EnterpriseId": "e",
        "IntegrationId": "i",
        "Events": [{"Discriminator": "SomethingNew", "Value": {"Id": "x"}}],
    }
    answer = client_for("mews_webhook").post(f"/?Token={SECRET}", json=body)
    assert answer.status_code == 202
    assert rows(env, "select unknown_discriminators from public.event_inbox") == [
        (["SomethingNew"],)
    ]


def test_integration_webhooks_drive_the_connection(
    env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    hook = client_for("mews_webhook")
    created = load("webhook_integration")
    assert hook.post(f"/?Token={SECRET}", json=created).status_code == 202
    token = created["Data"]["AccessToken"]
    [(encrypted, status)] = rows(
        env, "select access_token_encrypted, status from public.connections"
    )
    assert token not in encrypted
    assert Fernet(KEY.encode()).decrypt(encrypted.encode()).decode() == token
    assert status == "active"
    for name, expected in (
        ("webhook_integration_api_key_created", "active"),
        ("webhook_integration_disabled", "disabled"),
        ("webhook_integration_deleted", "deleted"),
    ):
        assert hook.post(f"/?Token={SECRET}", json=load(name)).status_code == 202
        [(encrypted_now, status)] = rows(
            env, "select access_token_encrypted, status from public.connections"
        )
        assert status == expected
        if name == "webhook_integration_api_key_created":
            assert (
                Fernet(KEY.encode()).decrypt(encrypted_now.encode()).decode()
                == load(name)["Data"]["ApiKey"]
            )
    assert encrypted_now is None  # purged on deletion
    out = capsys.readouterr()
    assert token not in out.out + out.err
    assert SECRET not in out.out + out.err


def post(body: bytes | dict[str, Any]) -> Any:
    """POST a body to mews_webhook with the right URL secret."""
    hook = client_for("mews_webhook")
    if isinstance(body, bytes):
        return hook.post(f"/?Token={SECRET}", data=body, content_type="application/json")
    return hook.post(f"/?Token={SECRET}", json=body)


def inbox(url: str) -> list[tuple[Any, ...]]:
    return rows(
        url, "select id, source, status, body_raw, error from public.event_inbox order by id"
    )


def columns_holding(url: str, needle: str) -> list[str]:
    """Every text, varchar or jsonb column (and text array) of a table in public holding
    ``needle``."""
    found = []
    with psycopg.connect(url) as conn:
        columns = conn.execute(
            "select c.table_name, c.column_name from information_schema.columns c"
            " join information_schema.tables t using (table_schema, table_name)"
            " where c.table_schema = 'public' and t.table_type = 'BASE TABLE'"
            " and c.data_type in ('text', 'jsonb', 'character varying', 'json', 'ARRAY')"
        ).fetchall()
        for table, column in columns:
            query = psycopg.sql.SQL(
                "select count(*) from public.{} where position(%s in {}::text) > 0"
            ).format(psycopg.sql.Identifier(table), psycopg.sql.Identifier(column))
            row = conn.execute(query, (needle,)).fetchone()
            if row and row[0]:
                found.append(f"{table}.{column}")
    return found


def test_a_raw_nul_byte_is_400_and_stored_rejected_with_a_replacement_character(env: str) -> None:
    body = b'{"EnterpriseId": "e\x00", "IntegrationId": "i", "Events": []}'
    answer = post(body)
    assert answer.status_code == 400
    assert answer.get_json()["error"] == f"{NUL_REASON} at byte 19"
    assert inbox(env) == [
        (
            answer.get_json()["stored"],
            "general_webhook",
            "rejected",
            body.decode().replace("\x00", "\ufffd"),
            answer.get_json()["error"],
        )
    ]


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (
            '{"EnterpriseId": "e", "IntegrationId": "i", "Events": [{"Discriminator": "CustomerUpdated", "Value": {"Id": "\\u0000"}}]}',
            "at $.Events[0].Value.Id",
        ),
        (
            '{"EnterpriseId": "e", "IntegrationId": "i", "Events": [{"Discriminator": "CustomerUpdated", "Value": {"Id": "x", "\\u0000": 1}}]}',
            "in a key of $.Events[0].Value",
        ),
    ],
    ids=["in-a-value", "in-a-key"],
)
def test_an_escaped_nul_is_400_and_stored_rejected_never_a_silent_202(
    env: str, raw: str, where: str
) -> None:
    answer = post(raw.encode())
    assert answer.status_code == 400
    assert answer.get_json()["error"] == f"{NUL_REASON} {where}"
    [(stored_id, _, status, body_raw, error)] = inbox(env)
    assert (stored_id, status, body_raw, error) == (
        answer.get_json()["stored"],
        "rejected",
        raw,
        answer.get_json()["error"],
    )


def test_invalid_utf8_is_400_and_stored_with_replacement_characters(env: str) -> None:
    answer = post(b'{"EnterpriseId": "\xff\xfe"}')
    assert answer.status_code == 400
    assert answer.get_json()["error"] == "body is not JSON: invalid UTF-8 at byte 18"
    assert inbox(env)[0][2:4] == ("rejected", '{"EnterpriseId": "\ufffd\ufffd"}')


def _integration(name: str, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    body: dict[str, Any] = load(name)
    change(body)
    return body


INVALID_INTEGRATION_WEBHOOKS = {
    "Integration null": (
        _integration("webhook_integration_disabled", lambda b: b["Data"].update(Integration=None)),
        "Data.Integration is not an object (got null)",
    ),
    "Integration a string": (
        _integration("webhook_integration_disabled", lambda b: b["Data"].update(Integration="x")),
        "Data.Integration is not an object (got a string)",
    ),
    "Integration.Id not a UUID": (
        _integration(
            "webhook_integration_api_key_created",
            lambda b: b["Data"]["Integration"].update(Id="1a1a1a1a"),
        ),
        "Data.Integration.Id is not a UUID",
    ),
    "Enterprise.Id not a UUID": (
        _integration("webhook_integration", lambda b: b["Data"]["Enterprise"].update(Id="e1")),
        "Data.Enterprise.Id is not a UUID",
    ),
    "AccessToken missing": (
        _integration("webhook_integration", lambda b: b["Data"].pop("AccessToken")),
        "Data.AccessToken is not a non-empty string (got nothing)",
    ),
}


@pytest.mark.parametrize(
    ("body", "reason"),
    INVALID_INTEGRATION_WEBHOOKS.values(),
    ids=INVALID_INTEGRATION_WEBHOOKS.keys(),
)
def test_an_integration_webhook_breaking_section_8_is_400_and_leaves_connections_alone(
    env: str, body: dict[str, Any], reason: str
) -> None:
    answer = post(body)
    assert answer.status_code == 400
    assert answer.get_json()["error"] == f"Integration webhook: {reason}"
    [(stored_id, source, status, _, error)] = inbox(env)
    assert (stored_id, source, status, error) == (
        answer.get_json()["stored"],
        "integration_webhook",
        "rejected",
        answer.get_json()["error"],
    )
    assert rows(env, "select count(*) from public.connections") == [(0,)]
    for secret in (body["Data"].get("AccessToken"), body["Data"].get("ApiKey")):
        if secret:
            assert columns_holding(env, secret) == []


def test_tokens_are_kept_only_encrypted_in_connections(env: str) -> None:
    created = load("webhook_integration")
    rotated = load("webhook_integration_api_key_created")
    assert post(created).status_code == 202
    assert post(rotated).status_code == 202
    for token in (created["Data"]["AccessToken"], rotated["Data"]["ApiKey"]):
        assert columns_holding(env, token) == []
    [(encrypted,)] = rows(env, "select access_token_encrypted from public.connections")
    assert Fernet(KEY.encode()).decrypt(encrypted.encode()).decode() == rotated["Data"]["ApiKey"]
    stored = [json.loads(body_raw) for _, _, _, body_raw, _ in inbox(env)]
    assert stored[0]["Data"]["AccessToken"] == "[redacted]"
    assert stored[1]["Data"]["ApiKey"] == "[redacted]"
    assert stored[0]["Data"]["Enterprise"] == created["Data"]["Enterprise"]


def test_a_body_that_is_not_json_keeps_no_token(env: str) -> None:
    token = load("webhook_integration")["Data"]["AccessToken"]
    answer = post(b'{"Action": "IntegrationCreated", "Data": {"AccessToken": "' + token.encode())
    assert answer.status_code == 400
    assert columns_holding(env, token) == []
    assert (
        inbox(env)[0][3] == '{"Action": "IntegrationCreated", "Data": {"AccessToken": "[redacted]"'
    )


@pytest.mark.parametrize(
    "template",
    [
        b'{"Action": "IntegrationCreated", "Data": {"Access\\u0054oken": "TOKEN", ',
        b'{"Action": "IntegrationCreated", "Data": {"Access\\u0074oken": "TOKEN"',
        b'{"Action": "IntegrationApiKeyCreated", "Data": {"Api\\u004Bey": TOKEN, ',
        b'{"Data": {"Client\\u0054oken": "TOKEN", "Url": "https://x.example/?Token=SECRET"',
        b"AccessToken=TOKEN&ClientToken=TOKEN&Token=SECRET",
    ],
)
def test_a_body_that_is_not_json_keeps_no_token_under_any_spelling(
    env: str, template: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    """The audit's finding: a token under an escaped key stayed in plain text in the rejected
    row. Neither it nor the URL secret (?Token=) is stored or logged."""
    token = load("webhook_integration")["Data"]["AccessToken"]
    body = template.replace(b"TOKEN", token.encode()).replace(b"SECRET", SECRET.encode())
    answer = post(body)
    assert answer.status_code == 400
    assert "not JSON" in answer.get_json()["error"]
    assert (columns_holding(env, token), columns_holding(env, SECRET)) == ([], [])
    [(status, body_raw)] = rows(env, "select status, body_raw from public.event_inbox")
    assert status == "rejected"
    assert "[redacted]" in body_raw
    logged = capsys.readouterr()
    assert token not in logged.out + logged.err
    assert SECRET not in logged.out + logged.err


def test_a_body_over_the_limit_is_413_nothing_stored_and_the_refusal_logged_with_its_size(
    env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The audit stored a 5 MB body; now it is refused before anything is stored."""
    body = {"EnterpriseId": "e", "Events": [], "Padding": "x" * 5_000_000}
    raw = json.dumps(body).encode()
    answer = post(raw)
    assert answer.status_code == 413
    assert answer.get_json() == {
        "error": f"body of {len(raw)} bytes is over the limit of {BODY_MAX_BYTES} bytes; not stored"
    }
    assert rows(env, "select count(*) from public.event_inbox") == [(0,)]
    logged = capsys.readouterr().out
    assert "body too large" in logged
    assert str(len(raw)) in logged
    # a body at the limit is a body like any other
    at_limit = json.dumps({"EnterpriseId": "e", "Events": [], "Padding": ""}).encode()
    at_limit = at_limit.replace(b'""', b'"' + b"x" * (BODY_MAX_BYTES - len(at_limit)) + b'"')
    assert (len(at_limit), post(at_limit).status_code) == (BODY_MAX_BYTES, 202)


def test_an_enterprise_name_over_the_limit_is_400_and_the_connection_untouched(env: str) -> None:
    created = load("webhook_integration")
    created["Data"]["Enterprise"]["Name"] = "Grand Hotel " * 1000
    answer = post(created)
    assert answer.status_code == 400
    assert answer.get_json()["error"] == (
        "Integration webhook: Data.Enterprise.Name is 12000 characters long (at most 1000)"
    )
    assert rows(env, "select status from public.event_inbox") == [("rejected",)]
    assert rows(env, "select count(*) from public.connections") == [(0,)]
    assert columns_holding(env, created["Data"]["AccessToken"]) == []


@pytest.mark.parametrize("name", ["webhook_integration", "webhook_integration_api_key_created"])
def test_without_an_encryption_key_a_token_is_503_nothing_is_stored_and_the_retry_succeeds(
    database_url: str, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    body = load(name)
    token = body["Data"].get("AccessToken") or body["Data"]["ApiKey"]
    try:
        runtime.reset(database_url=database_url, webhook_secret=SECRET, token_encryption_key=None)
        answer = post(body)
        assert answer.status_code == 503
        assert answer.get_json() == {"error": MISSING_KEY}
        assert rows(database_url, "select count(*) from public.event_inbox") == [(0,)]
        assert rows(database_url, "select count(*) from public.connections") == [(0,)]
        out = capsys.readouterr()
        assert MISSING_KEY in out.out + out.err
        assert token not in out.out + out.err
        # the operator sets the key; Mews re-sends: the token is not lost
        runtime.reset(database_url=database_url, webhook_secret=SECRET, token_encryption_key=KEY)
        assert post(body).status_code == 202
        [(encrypted,)] = rows(database_url, "select access_token_encrypted from public.connections")
        assert Fernet(KEY.encode()).decrypt(encrypted.encode()).decode() == token
    finally:
        runtime.reset()


def test_an_unreachable_database_is_a_json_503_without_secrets() -> None:
    url = "postgresql://postgres:db-password-42@127.0.0.1:1/x"
    try:
        runtime.reset(database_url=url, webhook_secret=SECRET, token_encryption_key=KEY)
        answer = post(load("webhook_integration"))
        assert answer.status_code == 503
        assert answer.is_json
        assert "Mews will retry" in answer.get_json()["error"]
        text = answer.get_data(as_text=True)
        for secret in (SECRET, KEY, "db-password-42", "127.0.0.1", "postgresql://"):
            assert secret not in text
        assert load("webhook_integration")["Data"]["AccessToken"] not in text
    finally:
        runtime.reset()


BAD_KEY = "not-a-fernet-key-but-a-secret-VALUE-1234"


def test_an_invalid_configuration_is_a_json_500_with_one_line_logged_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TOKEN_ENCRYPTION_KEY", BAD_KEY)
    try:
        with pytest.raises(ConfigurationError):
            runtime.reset()
        for _ in range(2):
            answer = post(load("webhook_integration"))
            assert answer.status_code == 500
            assert answer.get_json() == {"error": INVALID_ENCRYPTION_KEY_MESSAGE}
        out = capsys.readouterr()
        logged = out.out + out.err
        assert logged.count("invalid configuration") == 1
        assert BAD_KEY not in logged
    finally:
        monkeypatch.delenv("TOKEN_ENCRYPTION_KEY")
        runtime.reset()


def test_preflight_passes_with_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOKEN_ENCRYPTION_KEY", raising=False)
    preflight()


def test_preflight_refuses_a_malformed_key_with_one_line_and_no_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOKEN_ENCRYPTION_KEY", BAD_KEY)
    with pytest.raises(ConfigurationError) as caught:
        preflight()
    assert str(caught.value) == INVALID_ENCRYPTION_KEY_MESSAGE
    assert BAD_KEY not in str(caught.value)


def _import_main(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    return subprocess.run(
        [sys.executable, "-c", "import functions.main"],
        cwd=Path(__file__).resolve().parents[2],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_a_deployed_instance_with_a_malformed_key_fails_at_start_up() -> None:
    assert _import_main().returncode == 0
    failed = _import_main(TOKEN_ENCRYPTION_KEY=BAD_KEY)
    assert failed.returncode != 0
    assert failed.stderr.strip().splitlines()[-1] == (
        f"functions.runtime.ConfigurationError: {INVALID_ENCRYPTION_KEY_MESSAGE}"
    )
    assert BAD_KEY not in failed.stderr + failed.stdout


def deliver(simulator: Simulator, **counts: int) -> dict[str, list[str]]:
    """Mutate the simulator and deliver its webhook body through the function."""
    changed = simulator.mutate(**counts)
    events = []
    for customer_id in changed["customers_added"]:
        events += [
            {"Discriminator": "CustomerAdded", "Value": {"Id": customer_id}},
            {"Discriminator": "CustomerUpdated", "Value": {"Id": customer_id}},
        ]
    events += [
        {"Discriminator": "CustomerUpdated", "Value": {"Id": i}}
        for i in changed["customers_updated"]
    ]
    events += [
        {"Discriminator": "ServiceOrderUpdated", "Value": {"Id": i}}
        for i in changed["reservations"]
    ]
    hook = client_for("mews_webhook")
    body = {
        "EnterpriseId": simulator.data.enterprises[0]["Id"],
        "IntegrationId": simulator.data.integration_id,
    }
    # duplicated and reordered: every event twice, second copy reversed in another message
    for batch in (events, list(reversed(events))):
        assert hook.post(f"/?Token={SECRET}", json={**body, "Events": batch}).status_code == 202
    return changed


def test_process_events_applies_each_change_once_whatever_the_order(
    env: str, simulator: Simulator
) -> None:
    changed = deliver(simulator, customers_added=3, customers_updated=2, reservations_updated=2)
    answer = client_for("process_events").post("/")
    assert answer.status_code == 200, answer.get_json()
    summary = answer.get_json()
    assert summary["status"] == "succeeded"
    assert summary["counts"]["customers_ids"] == 5
    assert summary["counts"]["inbox_completed"] == 2
    mirrored = {str(r[0]): r[1] for r in rows(env, "select mews_id, raw from public.guests")}
    for customer_id in changed["customers_added"] + changed["customers_updated"]:
        assert mirrored[customer_id] == simulator.data.customers[customer_id]
    assert rows(env, "select status, count(*) from public.event_inbox group by 1") == [("done", 2)]
    # a replay of the same webhooks changes nothing
    deliver_again = client_for("process_events").post("/")
    assert deliver_again.get_json()["counts"].get("inbox_claimed") is None


def test_two_process_events_at_once_never_take_the_same_event(
    env: str, simulator: Simulator
) -> None:
    for _ in range(6):
        deliver(simulator, customers_updated=2)
    results: list[dict[str, Any]] = []

    def call() -> None:
        results.append(client_for("process_events").post("/").get_json())

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = sum(r["counts"].get("inbox_claimed", 0) for r in results)
    assert claimed == 12
    assert rows(env, "select status, count(*) from public.event_inbox group by 1") == [("done", 12)]


def test_failed_batches_are_retried_then_dead_lettered_then_replayed(
    env: str, simulator: Simulator
) -> None:
    # a first pass learns what the connection covers (configuration/get), so that the faults
    # below meet the refresh of the events
    assert client_for("process_events").post("/").get_json()["status"] == "succeeded"
    # two events, so that the reversed second message differs from the first: an identical
    # body re-sent while the first copy waits is stored once (inbox_add deduplicates)
    deliver(simulator, customers_updated=2)
    simulator.set_faults(statuses=[400] * 2)
    for _ in range(1):
        answer = client_for("process_events").post("/")
        assert answer.get_json()["status"] == "failed"
    with psycopg.connect(env, autocommit=True) as conn:
        conn.execute(
            "update public.event_inbox set available_at = now(), attempts = 5 where status = 'failed'"
        )
    client_for("process_events").post("/")
    assert {r[0] for r in rows(env, "select status from public.event_inbox")} == {"dead"}
    from typer.testing import CliRunner

    from shared.cli import app

    result = CliRunner().invoke(app, ["events", "replay"], env={"DATABASE_URL": env})
    assert result.exit_code == 0, result.output
    assert "2" in result.output
    simulator.set_faults(statuses=[])
    assert client_for("process_events").post("/").get_json()["status"] == "succeeded"
    assert {r[0] for r in rows(env, "select status from public.event_inbox")} == {"done"}


def test_poll_then_reconcile_record_honest_runs(env: str, simulator: Simulator) -> None:
    first = client_for("poll_changes").post("/")
    assert first.status_code == 200, first.get_json()
    assert rows(env, "select count(*) from public.guests") == [(len(simulator.data.customers),)]
    simulator.data.customers[next(iter(simulator.data.customers))]["Phone"] = (
        "+44 20 7946 0999"  # drift without UpdatedUtc
    )
    answer = client_for("reconcile").post("/?entity=customers")
    assert answer.status_code == 200
    runs = rows(env, "select job, status from public.sync_runs order by started_at")
    assert runs == [("poll_changes", "succeeded"), ("reconcile", "succeeded")]


def test_a_rate_limited_poll_is_never_recorded_as_success(env: str, simulator: Simulator) -> None:
    runtime.reset(database_url=env, mews_platform_url=simulator.url, mews_timeout_seconds=5)
    simulator.set_faults(storm=100, storm_retry_after=0)
    answer = client_for("poll_changes").post("/")
    assert answer.status_code == 503
    assert rows(env, "select status from public.sync_runs") == [("rate_limited",)]
    simulator.set_faults(storm=-simulator.app.faults.storm)


def test_push_sends_staff_edits_and_logs_conflicts(env: str, simulator: Simulator) -> None:
    from tests.support.tenancy import add_user

    assert client_for("poll_changes").post("/").status_code == 200
    ids = [c for c, v in simulator.data.customers.items() if v["IsActive"]][:3]
    chain = simulator.data.chain_id
    with psycopg.connect(env, autocommit=True) as conn:
        enterprise = simulator.data.enterprises[0]["Id"]
        user = add_user(conn, enterprise_id=enterprise, role="staff")
        with conn.transaction():
            cur = conn
            cur.execute("set local role authenticated")
            cur.execute(
                "select set_config('request.jwt.claims', %s, true)",
                (json.dumps({"role": "authenticated", "sub": user}),),
            )
            cur.execute(
                "update public.guests set phone = '+44 20 7946 0123', occupation = null where mews_id = %s",
                (ids[0],),
            )
            cur.execute(
                "update public.guests set first_name = 'Late' where mews_id = %s", (ids[1],)
            )
            taken = next(
                v["Email"]
                for v in simulator.data.customers.values()
                if v["Email"] and v["IsActive"] and v["Id"] != ids[2]
            )
            cur.execute("update public.guests set email = %s where mews_id = %s", (taken, ids[2]))
    simulator.mutate()  # nothing
    # Mews changes guest 1 seconds after the staff edit (its clock moved on): Mews must win
    simulator.app.clock.shift(5)
    simulator.data.customers[ids[1]]["FirstName"] = "FromMews"
    simulator.data.customers[ids[1]]["UpdatedUtc"] = simulator.app.clock.stamp(
        simulator.data.customers[ids[1]]["UpdatedUtc"]
    )
    answer = client_for("push_changes").post("/")
    assert answer.status_code == 200, answer.get_json()
    assert simulator.data.customers[ids[0]]["Phone"] == "+44 20 7946 0123"
    assert simulator.data.customers[ids[0]]["Occupation"] is None
    assert simulator.data.customers[ids[1]]["FirstName"] == "FromMews"
    statuses = dict(
        rows(
            env,
            f"select mews_id::text, push_status from public.guests where mews_id in ('{ids[0]}', '{ids[1]}', '{ids[2]}')",
        )
    )
    assert statuses == {ids[0]: "pushed", ids[1]: "mews_won", ids[2]: "refused"}
    conflicts = rows(
        env, "select guest_mews_id::text, field, resolution from public.conflict_log order by id"
    )
    assert (ids[1], "first_name", "mews_won") in conflicts
    assert (ids[2], None, "refused_by_mews") in conflicts
    # the echo: processing the webhook after our own write changes nothing
    hook = client_for("mews_webhook")
    hook.post(
        f"/?Token={SECRET}",
        json={
            "EnterpriseId": "e",
            "IntegrationId": "i",
            "Events": [{"Discriminator": "CustomerUpdated", "Value": {"Id": ids[0]}}],
        },
    )
    before = rows(
        env, f"select synced_at, push_status from public.guests where mews_id = '{ids[0]}'"
    )
    summary = client_for("process_events").post("/").get_json()
    assert summary["counts"].get("customers_updated", 0) == 0
    assert (
        rows(env, f"select synced_at, push_status from public.guests where mews_id = '{ids[0]}'")
        == before
    )
    assert chain
    json.dumps(summary)


def test_purge_inbox_deletes_processed_rows_and_finished_runs_past_the_retention(
    database_url: str,
) -> None:
    """The daily purge keeps what is young, pending or dead, and the newest run of each job,
    and records a run."""
    runtime.reset(database_url=database_url, inbox_retention_days=7, runs_retention_days=10)
    try:
        for status, days in (
            ("done", 8),
            ("done", 6),
            ("rejected", 30),
            ("dead", 30),
            ("pending", 30),
        ):
            rows(
                database_url,
                "insert into public.event_inbox (source, body_raw, body_hash, status, received_at,"
                f" processed_at) values ('general_webhook', '{status}{days}', 'h', '{status}',"
                f" now() - interval '{days} days', now() - interval '{days} days') returning id",
            )
        for job, status, days in (
            ("poll_changes", "succeeded", 40),  # purged: a newer poll_changes run exists
            ("poll_changes", "partial", 11),  # purged
            ("poll_changes", "succeeded", 9),  # young
            ("push_changes", "failed", 40),  # the newest of its job: kept
            ("backfill", "running", 40),  # not finished: kept (the reaper's)
        ):
            rows(
                database_url,
                "insert into public.sync_runs (job, status, started_at, finished_at) values"
                f" ('{job}', '{status}', now() - interval '{days} days',"
                f" case when '{status}' <> 'running' then now() - interval '{days} days' end)"
                " returning id",
            )
        # the newest of a job whose runs are all old, in another scope than a newer one
        rows(
            database_url,
            "insert into public.sync_runs (job, scope_id, status, started_at, finished_at) values"
            " ('poll_changes', gen_random_uuid(), 'succeeded', now() - interval '50 days',"
            " now() - interval '50 days') returning id",
        )
        answer = client_for("purge_inbox").post("/")
        left = sorted(r for (r,) in rows(database_url, "select body_raw from public.event_inbox"))
        runs = sorted(
            rows(
                database_url,
                "select job, status, extract(day from now() - started_at)::int,"
                " scope_id is not null from public.sync_runs",
            )
        )
    finally:
        runtime.reset()
    assert answer.status_code == 200
    assert answer.get_json()["counts"] == {"inbox_purged": 2, "runs_purged": 2}
    assert left == ["dead30", "done6", "pending30"]
    assert runs == [
        ("backfill", "running", 40, False),
        ("poll_changes", "succeeded", 9, False),
        ("poll_changes", "succeeded", 50, True),
        ("purge_inbox", "succeeded", 0, False),
        ("push_changes", "failed", 40, False),
    ]


def test_runs_purge_refuses_a_retention_under_a_day(database_url: str) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        rows(database_url, "select public.runs_purge(0)")


@pytest.mark.parametrize("name", ["mews_webhook", "poll_changes", "score_profiles"])
def test_a_function_without_a_database_answers_json_naming_the_settings(name: str) -> None:
    """Deployed with neither DATABASE_URL nor SUPABASE_URL: a JSON error, never an HTML page
    or an attempt to start the embedded database."""
    runtime.reset(webhook_secret=SECRET, token_encryption_key=KEY)
    try:
        answer = client_for(name).post(
            f"/?Token={SECRET}", data=b'{"EnterpriseId": "e", "Events": []}'
        )
    finally:
        runtime.reset()
    assert answer.status_code == 500
    assert answer.is_json
    assert "DATABASE_URL" in answer.get_json()["error"]
    assert "SUPABASE_URL" in answer.get_json()["error"]


def test_reconcile_of_an_unknown_entity_is_400_naming_the_entities(env: str) -> None:
    """`?entity=` takes an entity's name; another is refused before any run is recorded."""
    answer = client_for("reconcile").post("/?entity=bookings")
    assert answer.status_code == 400
    assert answer.get_json() == {
        "status": "failed",
        "error": f"unknown entity 'bookings': one of {', '.join(ENTITIES)}",
    }
    assert rows(env, "select count(*) from public.sync_runs") == [(0,)]
