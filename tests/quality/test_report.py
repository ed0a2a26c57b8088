"""The report names every guest it lists, shows duplicate pairs with their evidence, the week's
conflicts and the sync health, and renders CJK names; public.quality_report carries all of it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from shared.quality.report import FONT_STACK, age, render
from shared.quality.rules import DEFAULT_RULES
from tests.quality.conftest import enable_rules, insert_profile
from tests.support.rows import CHAIN_ID, ENTERPRISE_ID, OTHER_ENTERPRISE_ID
from tests.support.tenancy import add_user, as_role, seed_tenancy

GUEST = {
    "guest": "3f1c0d4e-0000-4000-8000-000000000001",
    "name": "山田 太郎",
    "email": "taro@example.jp",
}
OTHER = {"guest": "3f1c0d4e-0000-4000-8000-000000000002", "name": "Taro Yamada", "email": None}
REASONS = [{"message": "Missing: phone (−15)"}]
DATA: dict[str, Any] = {
    "enterprise": {"name": "Hotel <Alpha>"},
    "guests": 2,
    "average": 55.5,
    "worst": [{**GUEST, "score": 20, "reasons": REASONS}],
    "arrivals": [
        {
            **OTHER,
            "arrival": "2026-12-01T14:00:00+00:00",
            "state": "Confirmed",
            "score": 40,
            "reasons": REASONS,
        }
    ],
    "duplicates": 3,
    "duplicate_pairs": [
        {"a": GUEST, "b": OTHER, "evidence": [{"match": "phone", "value": "+81312345678"}]}
    ],
    "conflicts": [
        {
            **GUEST,
            "at": "2026-11-24T10:00:00+00:00",
            "field": "email",
            "local_value": "staff@example.jp",
            "mews_value": "mews@example.jp",
            "resolution": "mews_won",
        }
    ],
    "sync": {
        "runs": [{"job": "poll_changes", "status": "failed", "error": "boom <b>"}],
        "inbox": {"waiting": 0, "dead": 2},
        "attention": [{"check": "dead_letters", "message": "2 dead letter(s) in the inbox"}],
        "tokens": [],
        "poll": {"entities": 0},
    },
}


@pytest.fixture
def page() -> str:
    return render(DATA, generated=datetime(2026, 11, 25, tzinfo=UTC))


def test_every_list_names_its_guests_by_name_mews_id_and_email(page: str) -> None:
    for section in ("Worst profiles", "Arrivals at risk", "Possible duplicates", "Push conflicts"):
        assert section in page
    assert page.count(str(GUEST["guest"])) == 3  # worst, duplicates, conflicts
    assert page.count("taro@example.jp") == 3
    assert page.count(str(OTHER["guest"])) == 2  # arrivals, duplicates


def test_duplicate_pairs_show_their_evidence_and_how_many_are_not_listed(page: str) -> None:
    assert "same phone: +81312345678" in page
    assert "and 2 more pair(s)" in page


def test_weighed_pairs_show_their_probability_and_each_fields_level_and_weight() -> None:
    evidence = [
        {"field": "birth_date", "level": "exact", "weight": 13.4, "detail": "1980-03-07"},
        {"field": "first_name", "level": "nickname", "weight": 3.2, "detail": "bill/william"},
        {"field": "email", "level": "different", "weight": -1.3, "detail": ""},
        {"field": "phone", "level": "uninformative", "weight": 0.0, "detail": "shared by 41"},
    ]
    weighed = {
        **DATA,
        "duplicates": 1,
        "duplicate_pairs": [{"a": GUEST, "b": OTHER, "probability": 0.9731, "evidence": evidence}],
    }
    page = render(weighed, generated=datetime(2026, 11, 25, tzinfo=UTC))
    assert "97.3%" in page
    assert "birth date: exact 1980-03-07 +13.4" in page
    assert "first name: nickname bill/william +3.2" in page
    assert "e-mail: different -1.3" in page
    assert "phone: uninformative shared by 41 +0.0" in page


def test_conflicts_show_both_values_and_who_won(page: str) -> None:
    assert "staff@example.jp" in page
    assert "mews@example.jp" in page
    assert "Mews won" in page


def test_sync_health_says_what_needs_attention(page: str) -> None:
    assert "2 dead letter(s) in the inbox" in page
    assert 'class="failed">failed<' in page


def test_cjk_names_are_kept_and_a_font_that_covers_them_is_named(page: str) -> None:
    assert "山田 太郎" in page
    assert FONT_STACK in page
    for font in ('"Noto Sans CJK JP"', '"Hiragino Sans"', '"Microsoft YaHei"'):
        assert font in FONT_STACK
    assert FONT_STACK.endswith("sans-serif")


def test_text_from_the_data_is_escaped(page: str) -> None:
    assert "Hotel &lt;Alpha&gt;" in page
    assert "boom &lt;b&gt;" in page


def test_an_empty_report_says_so_in_each_list() -> None:
    page = render({"enterprise": {"name": "New"}})
    assert "No possible duplicates" in page
    assert "No push conflicts in the last 7 days." in page
    assert "No sync status for this enterprise." in page


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "—"), (12, "12 s"), (600, "10 min"), (7200, "2.0 h"), (3 * 86400, "3 d")],
)
def test_ages_read_as_people_say_them(seconds: float | None, text: str) -> None:
    assert age(seconds) == text


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        seed_tenancy(conn)
        enable_rules(conn, ENTERPRISE_ID, [r.model_dump() for r in DEFAULT_RULES])
        yield conn


def test_quality_report_names_guests_and_carries_pairs_conflicts_and_sync(
    conn: psycopg.Connection,
) -> None:
    a = insert_profile(
        conn, {"last_name": "山田", "first_name": "太郎", "email": "taro@example.jp"}
    )
    b = insert_profile(conn, {"last_name": "Yamada", "first_name": "Taro"})
    conn.execute("select public.quality_rescore(%s)", (ENTERPRISE_ID,))
    low, high = sorted([a, b])
    evidence = [{"field": "phone", "level": "exact", "weight": 8.0, "detail": "+81312345678"}]
    conn.execute(
        "insert into public.guest_duplicates (chain_id, guest_a, guest_b, evidence, probability,"
        " match_weight) values (%s, %s, %s, %s, 0.95, 20)",
        (CHAIN_ID, low, high, json.dumps(evidence)),
    )
    conn.execute(
        "insert into public.conflict_log (chain_id, guest_mews_id, field, local_value, mews_value,"
        " resolution) values (%s, %s, 'email', '\"x@example.jp\"', '\"taro@example.jp\"', 'mews_won')",
        (CHAIN_ID, a),
    )
    staff = add_user(conn, enterprise_id=ENTERPRISE_ID, role="staff")
    with as_role(conn, "authenticated", staff):
        data = conn.execute("select public.quality_report(%s)", (ENTERPRISE_ID,)).fetchone()[0]  # type: ignore[index]
        theirs = conn.execute(
            "select public.quality_report(%s)", (OTHER_ENTERPRISE_ID,)
        ).fetchone()[0]  # type: ignore[index]
    worst = {w["guest"]: (w["name"], w["email"]) for w in data["worst"]}
    assert worst == {a: ("太郎 山田", "taro@example.jp"), b: ("Taro Yamada", None)}
    (pair,) = data["duplicate_pairs"]
    assert {pair["a"]["guest"], pair["b"]["guest"]} == {a, b}
    assert (pair["evidence"], pair["probability"]) == (evidence, pytest.approx(0.95))
    (conflict,) = data["conflicts"]
    assert (conflict["guest"], conflict["email"], conflict["resolution"]) == (
        a,
        "taro@example.jp",
        "mews_won",
    )
    assert data["sync"]["id"] == ENTERPRISE_ID
    assert (theirs["duplicate_pairs"], theirs["conflicts"], theirs["sync"]) == ([], [], None)
