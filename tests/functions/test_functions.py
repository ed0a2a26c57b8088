"""Each Cloud Function through functions-framework's test client, against the real database and
the simulator."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import functions_framework
import psycopg
import pytest
from cryptography.fernet import Fernet

from functions import runtime
from shared.simulator.running import Simulator, running_simulator
from shared.simulator.server import SimulatorConfig
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
    deliver(simulator, customers_updated=1)
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
    # Mews changes guest 1 after the staff edit: Mews must win
    import time

    time.sleep(1.1)
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
