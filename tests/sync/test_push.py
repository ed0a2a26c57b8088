"""Pushing staff edits to Mews by a field-level three-way merge.

Against a real, fully migrated PostgreSQL: the trigger that records the bases, the database API
of the push, the conflicts view under row-level security. Against the simulator over real HTTP:
the observed loss (Mews changed another field) and true conflicts. With respx (the simulator
does not answer 409 to customers/update): the 409 re-read, re-merge and resubmit.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
import respx
import typer
from psycopg.types.json import Jsonb
from typer.testing import CliRunner

from shared.cli.conflicts import conflicts_command
from shared.db.store import Store
from shared.mews.client import MewsClient
from shared.simulator.data import STAFF_PROFILE_ID
from shared.simulator.running import Simulator
from shared.sync.engine import SyncEngine
from shared.sync.entities import SPECS
from shared.sync.push import MAX_ATTEMPTS, push_changes, push_guest
from shared.sync.runs import recorded_run
from tests.support.respx_mews import TOKENS, bodies
from tests.support.rows import (
    CHAIN_ID,
    ENTERPRISE_ID,
    OTHER_CHAIN_ID,
    OTHER_ENTERPRISE_ID,
    store_guests,
)
from tests.support.rows import guest_row as make_guest_row
from tests.support.tenancy import add_user, as_role, seed_tenancy

pytestmark = pytest.mark.anyio


# -- helpers ---------------------------------------------------------------------------------


def staff_update(url: str, user: str, sql: str, params: tuple[Any, ...]) -> None:
    """One committed request of a staff member, as PostgREST runs it."""
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute("set local role authenticated")
        conn.execute(
            "select set_config('request.jwt.claims', %s, true)",
            (json.dumps({"role": "authenticated", "sub": user}),),
        )
        conn.execute(sql, params)


def guest_state(url: str, mews_id: str) -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "select notes, email, phone, local_changes, local_base, local_base_updated_utc,"
            " push_status, push_error from public.guests where mews_id = %s",
            (mews_id,),
        ).fetchone()
    assert row is not None
    keys = ("notes", "email", "phone", "changes", "base", "based_on", "status", "error")
    return dict(zip(keys, row, strict=True))


def conflict_rows(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select guest_mews_id::text, field, local_value, mews_value, resolution"
            " from public.conflict_log order by id"
        ).fetchall()


def mews_edit(simulator: Simulator, customer_id: str, **fields: Any) -> None:
    """Hotel staff change a profile in Mews (a new UpdatedUtc, by a Mews user)."""
    customer = simulator.data.customers[customer_id]
    customer.update(fields)
    customer["UpdatedUtc"] = simulator.app.clock.stamp(customer["UpdatedUtc"])
    customer["UpdaterProfileId"] = STAFF_PROFILE_ID


def seed_guests(url: str, rows: list[dict[str, Any]]) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("set role service_role")
        store_guests(conn, rows)


@pytest.fixture
def tenancy(database_url: str) -> dict[str, str]:
    """Two chains, a guest in each, and a staff member of each."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        seed_tenancy(conn)
        users = {
            "alpha": add_user(conn, enterprise_id=ENTERPRISE_ID),
            "beta": add_user(conn, enterprise_id=OTHER_ENTERPRISE_ID),
        }
    alpha = make_guest_row(first_name="Ana", last_name="Alpha", notes="", phone="+420 1")
    beta = make_guest_row(chain_id=OTHER_CHAIN_ID, first_name="Ben", last_name="Beta", notes="")
    seed_guests(database_url, [alpha, beta])
    return {**users, "alpha_guest": alpha["mews_id"], "beta_guest": beta["mews_id"]}


# -- the trigger: bases recorded, never written by staff or by the sync ----------------------


def test_the_first_edit_of_a_column_records_what_the_staff_member_saw(
    database_url: str, tenancy: dict[str, str]
) -> None:
    user, guest = tenancy["alpha"], tenancy["alpha_guest"]
    update = "update public.guests set {} where mews_id = %s"
    staff_update(database_url, user, update.format("notes = 'first'"), (guest,))
    state = guest_state(database_url, guest)
    assert state["changes"] == {"notes": "first"}
    assert state["base"] == {"notes": ""}
    assert state["status"] == "pending"
    # the same column again: the first base stays; a new column: its value at that edit
    staff_update(database_url, user, update.format("notes = 'second'"), (guest,))
    staff_update(database_url, user, update.format("phone = '+420 2', email = null"), (guest,))
    state = guest_state(database_url, guest)
    assert state["changes"] == {"notes": "second", "phone": "+420 2"}
    assert state["base"] == {"notes": "", "phone": "+420 1"}
    with psycopg.connect(database_url) as conn:
        pending = conn.execute("select public.push_pending(10)").fetchone()
    assert pending is not None
    [entry] = pending[0]
    assert entry["changes"] == {"notes": "second", "phone": "+420 2"}
    assert entry["base"] == {"notes": "", "phone": "+420 1"}


def test_an_edit_over_what_the_form_read_matches_nothing_once_mews_changed_the_guest(
    database_url: str, tenancy: dict[str, str]
) -> None:
    """docs/FRONTEND.md §2: the edit names the mews_updated_utc it was read with; a Mews change
    mirrored meanwhile makes it match no row, so the change is never overwritten unseen."""
    user, guest = tenancy["alpha"], tenancy["alpha_guest"]
    with psycopg.connect(database_url) as conn:
        read = conn.execute(
            "select mews_updated_utc from public.guests where mews_id = %s", (guest,)
        ).fetchone()
    assert read is not None
    # Mews changes the phone (mirrored by the worker) while the form is open
    changed = make_guest_row(
        guest,
        first_name="Ana",
        last_name="Alpha",
        notes="",
        phone="+420 9",
        updated="2026-01-01T11:00:00Z",
    )
    seed_guests(database_url, [changed])
    assert guest_state(database_url, guest)["phone"] == "+420 9"
    edit = "update public.guests set phone = '+420 2' where mews_id = %s and mews_updated_utc = %s"
    staff_update(database_url, user, edit, (guest, read[0]))
    state = guest_state(database_url, guest)
    assert (state["phone"], state["changes"], state["status"]) == ("+420 9", None, None)
    # read again, the same edit goes through, over the value the staff member now saw
    with psycopg.connect(database_url) as conn:
        again = conn.execute(
            "select mews_updated_utc from public.guests where mews_id = %s", (guest,)
        ).fetchone()
    assert again is not None
    staff_update(database_url, user, edit, (guest, again[0]))
    state = guest_state(database_url, guest)
    assert (state["changes"], state["base"], state["status"]) == (
        {"phone": "+420 2"},
        {"phone": "+420 9"},
        "pending",
    )


def test_staff_cannot_write_the_bases_or_the_changes(
    database_url: str, tenancy: dict[str, str]
) -> None:
    with psycopg.connect(database_url) as conn:
        for column, value in (("local_base", '{"notes": "forged"}'), ("local_changes", "{}")):
            with (
                pytest.raises(psycopg.errors.InsufficientPrivilege),
                as_role(conn, "authenticated", tenancy["alpha"]),
            ):
                conn.execute(
                    f"update public.guests set {column} = %s where mews_id = %s",
                    (value, tenancy["alpha_guest"]),
                )


def test_a_sync_upsert_never_touches_the_bases_and_marks_nothing(
    database_url: str, tenancy: dict[str, str]
) -> None:
    guest = tenancy["alpha_guest"]
    staff_update(
        database_url,
        tenancy["alpha"],
        "update public.guests set notes = 'staff' where mews_id = %s",
        (guest,),
    )
    before = guest_state(database_url, guest)
    newer = make_guest_row(
        guest,
        updated="2026-02-01T10:00:00Z",
        first_name="Ana",
        last_name="Alpha",
        notes="from Mews",
        phone="+420 9",
        local_base={"notes": "forged"},
        local_changes={"notes": "forged"},
    )
    seed_guests(database_url, [newer])
    after = guest_state(database_url, guest)
    assert (after["notes"], after["phone"]) == ("from Mews", "+420 9")  # the mirror moved on
    assert after["base"] == before["base"] == {"notes": ""}
    assert after["changes"] == before["changes"] == {"notes": "staff"}
    assert after["based_on"] == before["based_on"]
    # a service_role write to an editable column is Mews' data, not an edit
    other = tenancy["beta_guest"]
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("set role service_role")
        conn.execute("update public.guests set notes = 'sync' where mews_id = %s", (other,))
    assert guest_state(database_url, other)["base"] is None
    assert guest_state(database_url, other)["status"] is None


def test_push_record_clears_the_bases_with_the_changes(
    database_url: str, tenancy: dict[str, str]
) -> None:
    guest = tenancy["alpha_guest"]
    staff_update(
        database_url,
        tenancy["alpha"],
        "update public.guests set notes = 'x' where mews_id = %s",
        (guest,),
    )
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("set role service_role")
        [edited_at] = conn.execute(
            "select local_edited_at from public.guests where mews_id = %s", (guest,)
        ).fetchone() or [None]
        record = "select public.push_record(%s, %s, %s, %s, %s)"
        for status, kept in (("pending", True), ("refused", True), ("pushed", False)):
            conn.execute(record, (CHAIN_ID, guest, edited_at, status, "why"))
            state = guest_state(database_url, guest)
            assert state["status"] == status
            assert (state["changes"] is not None, state["base"] is not None) == (kept, kept)


# -- the conflicts view: staff read their own chain's ----------------------------------------


def test_staff_read_the_conflicts_of_their_chain_only(
    database_url: str, tenancy: dict[str, str]
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("set role service_role")
        for chain, guest, note in (
            (CHAIN_ID, tenancy["alpha_guest"], "alpha note"),
            (OTHER_CHAIN_ID, tenancy["beta_guest"], "beta note"),
        ):
            conn.execute(
                "select public.push_record(%s, %s, now(), 'mews_won', null, %s)",
                (
                    chain,
                    guest,
                    Jsonb(
                        [
                            {
                                "field": "notes",
                                "local_value": note,
                                "mews_value": "mews",
                                "resolution": "mews_won",
                                "detail": "d",
                                "mews_updated_utc": "2026-02-01T10:00:00Z",
                            }
                        ]
                    ),
                ),
            )
    select = (
        "select guest_name, field, local_value, mews_value, resolution from public.guest_conflicts"
    )
    with psycopg.connect(database_url) as conn:
        with as_role(conn, "authenticated", tenancy["alpha"]):
            assert conn.execute(select).fetchall() == [
                ("Ana Alpha", "notes", "alpha note", "mews", "mews_won")
            ]
        with as_role(conn, "authenticated", tenancy["beta"]):
            assert conn.execute(select).fetchall() == [
                ("Ben Beta", "notes", "beta note", "mews", "mews_won")
            ]
        with as_role(conn, "authenticated", str(uuid.uuid4())):  # a user with no membership
            assert conn.execute(select).fetchall() == []
        with as_role(conn, "service_role"):
            assert len(conn.execute(select).fetchall()) == 2
            [recent] = conn.execute("select public.guest_conflicts_recent(1)").fetchone() or [[]]
            assert len(recent) == 1
        for role in ("anon", "authenticated"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege), as_role(conn, role):
                conn.execute("select public.guest_conflicts_recent(5)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege), as_role(conn, "anon"):
            conn.execute(select)
        reloptions = conn.execute(
            "select reloptions from pg_class where oid = 'public.guest_conflicts'::regclass"
        ).fetchone()
    assert reloptions == (["security_invoker=on"],)


def test_the_cli_lists_recent_conflicts(database_url: str, tenancy: dict[str, str]) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("set role service_role")
        conn.execute(
            "select public.push_record(%s, %s, now(), 'pushed', null, %s)",
            (
                CHAIN_ID,
                tenancy["alpha_guest"],
                Jsonb(
                    [
                        {
                            "field": "notes",
                            "local_value": "quiet room",
                            "mews_value": "[sea] view",
                            "resolution": "local_won",
                            "detail": "d",
                            "mews_updated_utc": None,
                        },
                        {
                            "field": "phone",
                            "local_value": None,
                            "mews_value": "+420 5",
                            "resolution": "mews_won",
                            "detail": "d",
                            "mews_updated_utc": None,
                        },
                    ]
                ),
            ),
        )
    app = typer.Typer()
    app.command("conflicts")(conflicts_command)  # as `guesthub sync conflicts`
    app.command("other")(lambda: None)  # two commands: typer keeps the command name
    runner = CliRunner()
    env = {"DATABASE_URL": database_url, "COLUMNS": "200"}
    result = runner.invoke(app, ["conflicts", "--limit", "5"], env=env)
    assert result.exit_code == 0, result.output
    for text in (
        "Ana Alpha",
        "notes",
        "quiet room",
        "[sea] view",
        "staff won",
        "phone",
        "(empty)",
        "Mews won",
    ):
        assert text in result.output
    one = runner.invoke(app, ["conflicts", "--limit", "1"], env=env)
    assert one.exit_code == 0, one.output
    assert one.output.count("Ana Alpha") == 1
    assert runner.invoke(app, ["conflicts", "--limit", "0"], env=env).exit_code != 0


# -- against the simulator ---------------------------------------------------------------------


def active_ids(simulator: Simulator, count: int) -> list[str]:
    ids = [
        c["Id"]
        for c in simulator.data.customers.values()
        if c["IsActive"] and not c["MergeTargetId"]
    ]
    assert len(ids) >= count
    return ids[:count]


async def staff_of(engine: SyncEngine, simulator: Simulator, database_url: str) -> str:
    await engine.backfill(SPECS["customers"])
    with psycopg.connect(database_url, autocommit=True) as conn:
        return add_user(conn, enterprise_id=simulator.data.enterprises[0]["Id"])


async def push(store: Store, engine: SyncEngine) -> Any:
    async with recorded_run(store, "push_changes") as run:
        await push_changes(store, engine, run)
    return run


async def test_a_mews_change_of_another_field_never_discards_a_staff_edit(
    engine: SyncEngine, simulator: Simulator, store: Store, database_url: str
) -> None:
    """The observed loss: staff edit notes, Mews then changes the e-mail of some of them."""
    user = await staff_of(engine, simulator, database_url)
    ids = active_ids(simulator, 30)
    for i, customer_id in enumerate(ids):
        staff_update(
            database_url,
            user,
            "update public.guests set notes = %s where mews_id = %s",
            (f"staff note {i}", customer_id),
        )
    simulator.app.clock.shift(5)  # Mews' change comes seconds later: its UpdatedUtc is the newer
    emailed = ids[::3]
    for customer_id in emailed:
        mews_edit(simulator, customer_id, Email=f"{customer_id[:8]}@changed-in-mews.example")
    run = await push(store, engine)
    assert run.status == "succeeded"
    assert run.counts["pushed"] == len(ids)
    for i, customer_id in enumerate(ids):
        customer = simulator.data.customers[customer_id]
        assert customer["Notes"] == f"staff note {i}"
        state = guest_state(database_url, customer_id)
        assert (state["status"], state["changes"], state["base"]) == ("pushed", None, None)
        assert state["notes"] == f"staff note {i}"  # mirrored at once
        if customer_id in emailed:
            assert customer["Email"] == f"{customer_id[:8]}@changed-in-mews.example"
            assert state["email"] == customer["Email"]
    assert conflict_rows(database_url) == []


async def test_both_sides_changing_a_field_is_decided_by_the_later_write_and_logged(
    engine: SyncEngine, simulator: Simulator, store: Store, database_url: str
) -> None:
    user = await staff_of(engine, simulator, database_url)
    early_mews, late_mews, already = active_ids(simulator, 3)
    # Mews first, then the staff member (who still saw the old note): the staff edit is later
    # (Mews stamps whole seconds: its clock is set seconds back for this edit, not waited out)
    simulator.app.clock.shift(-5)
    mews_edit(simulator, early_mews, Notes="Mews: early")
    set_notes = "update public.guests set notes = %s, phone = %s where mews_id = %s"
    staff_update(database_url, user, set_notes, ("Staff: late", "+44 20 7946 0001", early_mews))
    staff_update(database_url, user, set_notes, ("Staff: early", "+44 20 7946 0002", late_mews))
    staff_update(database_url, user, set_notes, ("Same on both", "+44 20 7946 0003", already))
    simulator.app.clock.shift(10)
    # then Mews again, seconds after the staff edits
    mews_edit(simulator, late_mews, Notes="Mews: late")
    mews_edit(simulator, already, Notes="Same on both")
    run = await push(store, engine)
    data = simulator.data.customers
    assert data[early_mews]["Notes"] == "Staff: late"
    assert data[late_mews]["Notes"] == "Mews: late"
    assert data[already]["Notes"] == "Same on both"
    # the phone, which Mews did not change, reaches Mews in every case
    assert [data[i]["Phone"] for i in (early_mews, late_mews, already)] == [
        "+44 20 7946 0001",
        "+44 20 7946 0002",
        "+44 20 7946 0003",
    ]
    assert sorted(conflict_rows(database_url)) == sorted(
        [
            (early_mews, "notes", "Staff: late", "Mews: early", "local_won"),
            (late_mews, "notes", "Staff: early", "Mews: late", "mews_won"),
        ]
    )
    assert guest_state(database_url, late_mews)["notes"] == "Mews: late"
    assert run.counts["push_conflicts"] == 2
    # the staff member reads both through the view, with the guest's name
    with psycopg.connect(database_url) as conn, as_role(conn, "authenticated", user):
        seen = conn.execute(
            "select guest_mews_id::text, guest_name, field, local_value, mews_value, resolution"
            " from public.guest_conflicts"
        ).fetchall()
    names = {
        i: " ".join(n for n in (data[i]["FirstName"], data[i]["LastName"]) if n)
        for i in (early_mews, late_mews)
    }
    assert sorted(seen) == sorted(
        [
            (early_mews, names[early_mews], "notes", "Staff: late", "Mews: early", "local_won"),
            (late_mews, names[late_mews], "notes", "Staff: early", "Mews: late", "mews_won"),
        ]
    )
    # Mews won the only field it did not already have: nothing else to send
    only_notes = active_ids(simulator, 4)[3]
    staff_update(
        database_url,
        user,
        "update public.guests set notes = 'mine' where mews_id = %s",
        (only_notes,),
    )
    simulator.app.clock.shift(5)
    mews_edit(simulator, only_notes, Notes="theirs")
    updates_before = (await asyncio.to_thread(simulator.stats))["operations"].get(
        "customers/update", 0
    )
    await push(store, engine)
    stats = await asyncio.to_thread(simulator.stats)
    assert stats["operations"].get("customers/update", 0) == updates_before
    state = guest_state(database_url, only_notes)
    assert (state["status"], state["changes"], state["notes"]) == ("mews_won", None, "theirs")
    assert (only_notes, "notes", "mine", "theirs", "mews_won") in conflict_rows(database_url)


async def test_clears_go_through_accounts_update_and_refusals_are_kept(
    engine: SyncEngine, simulator: Simulator, store: Store, database_url: str
) -> None:
    user = await staff_of(engine, simulator, database_url)
    data = simulator.data.customers
    candidates = [
        c for c in data.values() if c["IsActive"] and not c["MergeTargetId"] and c["Email"]
    ]
    cleared, refused, owner = candidates[0]["Id"], candidates[1]["Id"], candidates[2]
    staff_update(
        database_url,
        user,
        "update public.guests set email = null, notes = 'n' where mews_id = %s",
        (cleared,),
    )
    staff_update(
        database_url,
        user,
        "update public.guests set email = %s where mews_id = %s",
        (owner["Email"], refused),
    )
    run = await push(store, engine)
    assert data[cleared]["Email"] is None
    assert data[cleared]["Notes"] == "n"
    assert guest_state(database_url, cleared)["status"] == "pushed"
    state = guest_state(database_url, refused)
    assert state["status"] == "refused"
    assert state["changes"] == {"email": owner["Email"]}  # kept for staff to see and fix
    assert "same e-mail" in (state["error"] or "")
    assert [(r[0], r[1], r[4]) for r in conflict_rows(database_url)] == [
        (refused, None, "refused_by_mews")
    ]
    # refused for good (staff see why in the conflict log): nothing is left for a later push
    assert (run.status, run.counts["push_refused"]) == ("succeeded", 1)
    # never retried: the next push does not send it again
    await asyncio.to_thread(simulator.reset_stats)
    await push(store, engine)
    assert (await asyncio.to_thread(simulator.stats))["operations"] == {}


async def test_an_edit_of_a_profile_merged_away_in_mews_meanwhile_is_refused(
    engine: SyncEngine, simulator: Simulator, store: Store, database_url: str
) -> None:
    user = await staff_of(engine, simulator, database_url)
    source, target = active_ids(simulator, 2)
    staff_update(
        database_url, user, "update public.guests set notes = 'x' where mews_id = %s", (source,)
    )
    mews_edit(simulator, source, IsActive=False, MergeTargetId=target)
    await asyncio.to_thread(simulator.reset_stats)
    await push(store, engine)
    stats = await asyncio.to_thread(simulator.stats)
    assert "customers/update" not in stats["operations"]
    assert simulator.data.customers[source]["Notes"] != "x"
    state = guest_state(database_url, source)
    assert state["status"] == "refused"
    assert "surviving profile" in (state["error"] or "")
    assert state["changes"] == {"notes": "x"}
    with psycopg.connect(database_url) as conn:  # the read was mirrored
        assert conn.execute(
            "select is_active, merge_target_id::text from public.guests where mews_id = %s",
            (source,),
        ).fetchone() == (False, target)


# -- 409: re-read, re-merge, resubmit (respx: exact bodies) -------------------------------------

API = "https://mews.test/api/connector/v1/"
GUEST = "4f8d3b0e-1111-4000-8000-000000000001"
CHAIN = "4f8d3b0e-2222-4000-8000-000000000002"
EDITED = datetime(2026, 3, 1, 10, 0, 0, 500000, tzinfo=UTC)


def customer(updated: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "Id": GUEST,
        "ChainId": CHAIN,
        "Number": "100001",
        "LastName": "Sampleton",
        "Notes": "",
        "Phone": "+420 1",
        "Email": "amelia@example.com",
        "UpdatedUtc": updated.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "IsActive": True,
        **fields,
    }


def read_body() -> dict[str, Any]:
    return {
        **TOKENS,
        "Extent": {"Customers": True, "Addresses": False},
        "ActivityStates": ["Active", "Deleted"],
        "ChainIds": [CHAIN],  # required with a portfolio token
        "CustomerIds": [GUEST],
        "Limitation": {"Count": 1000},
    }


def got(*customers: dict[str, Any]) -> list[httpx.Response]:
    return [httpx.Response(200, json={"Customers": [c], "Cursor": None}) for c in customers]


def conflict() -> httpx.Response:
    return httpx.Response(409, json={"Message": "The customer was changed.", "RequestId": "r409"})


def pending_guest(changes: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    return {
        "chain_id": CHAIN,
        "mews_id": GUEST,
        "changes": changes,
        "base": base,
        "edited_at": EDITED.isoformat(),
        "base_updated_utc": "2026-03-01T09:00:00+00:00",
        "is_active": True,
        "merge_target_id": None,
    }


async def test_a_409_is_re_read_re_merged_and_resubmitted(mews_client: MewsClient) -> None:
    before = EDITED - timedelta(hours=1)
    after = (EDITED + timedelta(minutes=5)).replace(microsecond=0)
    with respx.mock(assert_all_called=True) as mock:
        reads = mock.post(API + "customers/getAll").mock(
            side_effect=got(
                customer(before),
                # meanwhile Mews changed the phone after the edit, and the e-mail
                customer(after, Phone="+420 9", Email="new@example.com"),
            )
        )
        writes = mock.post(API + "customers/update").mock(
            side_effect=[conflict(), httpx.Response(200, json=customer(after, Notes="staff"))]
        )
        outcome = await push_guest(
            mews_client,
            pending_guest({"notes": "staff", "phone": "+420 2"}, {"notes": "", "phone": "+420 1"}),
        )
    assert bodies(reads) == [read_body(), read_body()]
    assert bodies(writes) == [
        {**TOKENS, "CustomerId": GUEST, "ChainId": CHAIN, "Notes": "staff", "Phone": "+420 2"},
        # re-merged: Mews won the phone
        {**TOKENS, "CustomerId": GUEST, "ChainId": CHAIN, "Notes": "staff"},
    ]
    assert (outcome.status, outcome.attempts, outcome.fields, outcome.wrote) == (
        "pushed",
        2,
        1,
        True,
    )
    assert outcome.conflicts == [
        {
            "field": "phone",
            "local_value": "+420 2",
            "mews_value": "+420 9",
            "resolution": "mews_won",
            "detail": "Mews changed this field too, after the staff edit",
            "mews_updated_utc": after.isoformat(),
        }
    ]


async def test_a_409_after_a_partial_write_resubmits_only_what_is_missing(
    mews_client: MewsClient,
) -> None:
    # customers/update went through, accounts/update (the clear) answered 409; the notes were
    # a conflict the staff edit won (Mews changed them before the edit): it stays logged
    before = (EDITED - timedelta(hours=1)).replace(microsecond=0)
    written = EDITED + timedelta(seconds=2)
    with respx.mock(assert_all_called=True) as mock:
        mock.post(API + "customers/getAll").mock(
            side_effect=got(customer(before, Notes="from Mews"), customer(written, Notes="staff"))
        )
        sets = mock.post(API + "customers/update").mock(
            return_value=httpx.Response(200, json=customer(written, Notes="staff"))
        )
        clears = mock.post(API + "accounts/update").mock(
            side_effect=[conflict(), httpx.Response(200, json={"Accounts": []})]
        )
        outcome = await push_guest(
            mews_client,
            pending_guest({"notes": "staff", "phone": None}, {"notes": "", "phone": "+420 1"}),
        )
    clear = {
        **TOKENS,
        "ChainId": CHAIN,
        "AccountUpdates": [
            {"Id": GUEST, "Discriminator": "Customer", "Customer": {"Telephone": {"Value": None}}}
        ],
    }
    assert bodies(sets) == [{**TOKENS, "CustomerId": GUEST, "ChainId": CHAIN, "Notes": "staff"}]
    assert bodies(clears) == [clear, clear]
    assert (outcome.status, outcome.attempts, outcome.fields) == ("pushed", 2, 1)
    assert outcome.conflicts == [
        {
            "field": "notes",
            "local_value": "staff",
            "mews_value": "from Mews",
            "resolution": "local_won",
            "detail": "Mews changed this field too, before the staff edit",
            "mews_updated_utc": before.isoformat(),
        }
    ]


async def test_a_409_that_persists_keeps_the_edit_pending_with_its_error(
    mews_client: MewsClient, store: Store, database_url: str, tenancy: dict[str, str]
) -> None:
    guest = tenancy["alpha_guest"]
    staff_update(
        database_url,
        tenancy["alpha"],
        "update public.guests set notes = 'staff' where mews_id = %s",
        (guest,),
    )
    mews_side = {**customer(EDITED - timedelta(days=30)), "Id": guest, "ChainId": CHAIN_ID}
    with respx.mock(assert_all_called=True) as mock:
        reads = mock.post(API + "customers/getAll").mock(
            return_value=httpx.Response(200, json={"Customers": [mews_side], "Cursor": None})
        )
        writes = mock.post(API + "customers/update").mock(return_value=conflict())
        async with recorded_run(store, "push_changes") as run:
            await push_changes(store, SyncEngine(store, mews_client), run)
    assert reads.call_count == writes.call_count == MAX_ATTEMPTS
    write = {**TOKENS, "CustomerId": guest, "ChainId": CHAIN_ID, "Notes": "staff"}
    assert bodies(writes) == [write] * MAX_ATTEMPTS
    state = guest_state(database_url, guest)
    assert (state["status"], state["changes"], state["base"]) == (
        "pending",
        {"notes": "staff"},
        {"notes": ""},
    )
    assert "409" in (state["error"] or "")
    assert conflict_rows(database_url) == []
    assert run.status == "partial"
    assert run.counts["push_kept_pending"] == 1
    assert run.counts["push_resubmitted"] == MAX_ATTEMPTS - 1


async def test_a_push_reports_progress_and_leaves_nothing_pending_it_could_push(
    engine: SyncEngine, simulator: Simulator, store: Store, database_url: str
) -> None:
    """Edits go out several at a time, each reported once; a run that ends with edits still
    pending (here: no time left) says how many instead of succeeding."""
    user = await staff_of(engine, simulator, database_url)
    ids = active_ids(simulator, 12)
    for customer_id in ids:
        staff_update(
            database_url,
            user,
            "update public.guests set notes = 'n' where mews_id = %s",
            (customer_id,),
        )
    async with recorded_run(store, "push_changes") as late:
        await push_changes(store, engine, late, time_budget_seconds=0)
    assert (late.status, late.counts["push_still_pending"]) == ("partial", 12)
    assert late.error == "12 staff edit(s) still pending; the next push retries them"
    done: list[int] = []
    async with recorded_run(store, "push_changes") as run:
        await push_changes(store, engine, run, concurrency=4, limit=5, progress=done.append)
    assert (run.status, sum(done), run.counts["pushed"]) == ("succeeded", 12, 12)
    assert all(simulator.data.customers[i]["Notes"] == "n" for i in ids)
