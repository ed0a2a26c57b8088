"""The scorer's guarantees, as properties, and the rules' limits."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.quality.rules import DEFAULT_RULES, FIELDS, Rule, effective_costs
from shared.quality.scoring import present, score
from tests.quality.strategies import RULES, TODAY, profiles, value_for


@given(profile=profiles(), rules=RULES)
def test_a_score_stays_within_0_and_100(profile: dict[str, Any], rules: list[Rule]) -> None:
    assert 0 <= score(profile, rules, TODAY).value <= 100


@settings(max_examples=300)
@given(profile=profiles(), rules=RULES, data=st.data())
def test_filling_a_missing_field_never_lowers_the_score(
    profile: dict[str, Any], rules: list[Rule], data: st.DataObject
) -> None:
    missing = [f for f in FIELDS if not present(profile, f)]
    if not missing:
        return
    field = data.draw(st.sampled_from(missing))
    filled = dict(profile)
    filled[field] = data.draw(value_for(field).filter(lambda v, f=field: present({f: v}, f)))
    if field == "email":
        filled["email_valid"] = data.draw(st.booleans())
    if field == "phone":
        filled["phone_valid"] = data.draw(st.booleans())
    assert score(filled, rules, TODAY).value >= score(profile, rules, TODAY).value


@given(profile=profiles(), rules=RULES, data=st.data())
def test_the_order_of_rules_does_not_change_the_result(
    profile: dict[str, Any], rules: list[Rule], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(rules))
    first, second = score(profile, rules, TODAY), score(profile, list(shuffled), TODAY)
    assert first.value == second.value
    assert sorted(map(repr, first.reasons)) == sorted(map(repr, second.reasons))


def test_reasons_say_what_is_missing_and_what_it_costs() -> None:
    profile = {
        "last_name": "Novák",
        "first_name": "Jan",
        "email": "jan@example.com",
        "email_valid": True,
        "email_ota": True,
        "phone": "123",
        "phone_valid": False,
    }
    result = score(profile, DEFAULT_RULES, TODAY)
    messages = [r.message for r in result.reasons]
    assert "Missing: birth date (−10)" in messages
    assert "Invalid: phone (−10)" in messages
    assert "Weak: email (−5)" in messages
    assert result.value == round(100 * (10 + 10 + 15 + 15 - 10 - 5) / 90)


def test_a_complete_valid_profile_scores_100() -> None:
    profile = {
        "last_name": "Novák",
        "first_name": "Jan",
        "email": "jan@example.com",
        "email_valid": True,
        "email_ota": False,
        "phone": "+420 601 000 000",
        "phone_valid": True,
        "birth_date": date(1980, 1, 1),
        "nationality_code": "CZ",
        "address": True,
        "identity_document": True,
        "language": "cs-CZ",
    }
    assert score(profile, DEFAULT_RULES, TODAY).value == 100


def test_validators_never_cost_more_than_their_field_is_worth() -> None:
    rules = [
        Rule(field="phone", kind="required", weight=10),
        Rule(field="phone", kind="phone", weight=30),
        Rule(field="phone", kind="pattern", params={"regex": "^\\+"}, weight=10),
        Rule(field="title", kind="length", params={"max": 3}, weight=5),
    ]
    assert effective_costs(rules) == [Decimal(10), Decimal("7.5000"), Decimal("2.5000"), Decimal(0)]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"field": "shoe_size", "kind": "required", "weight": 5}, "unknown field"),
        (
            {"field": "email", "kind": "pattern", "params": {"regex": "(a+)+$"}, "weight": 5},
            "nested quantifiers",
        ),
        (
            {"field": "email", "kind": "pattern", "params": {"regex": "(a)\\1"}, "weight": 5},
            "back-references",
        ),
        (
            {"field": "email", "kind": "pattern", "params": {"regex": "(?=x)"}, "weight": 5},
            "look-arounds",
        ),
        (
            {"field": "email", "kind": "pattern", "params": {"regex": "a" * 201}, "weight": 5},
            "longer than 200 characters",
        ),
        (
            {"field": "email", "kind": "pattern", "params": {"regex": "[a-"}, "weight": 5},
            "unterminated bracket expression",
        ),
        ({"field": "phone", "kind": "email", "weight": 5}, "email field"),
        (
            {"field": "birth_date", "kind": "length", "params": {"max": 3}, "weight": 5},
            "text fields",
        ),
        (
            {"field": "title", "kind": "allowed_values", "params": {"values": []}, "weight": 5},
            "a list of 1 to 200 texts",
        ),
        (
            {
                "field": "first_name",
                "kind": "cross_field",
                "params": {"other": "first_name", "op": "differs"},
                "weight": 5,
            },
            "parameter other must name another field",
        ),
        ({"field": "email", "kind": "required", "weight": 101}, "less than or equal to 100"),
        (
            {"field": "email", "kind": "required", "weight": 5, "sql": "drop table guests"},
            "Extra inputs",
        ),
    ],
)
def test_rules_are_bounded_data(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Rule.model_validate(rule)
