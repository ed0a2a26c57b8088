"""Rules are checked twice, by the same words: in Python (`rule_problem`, for the CLI and the
score job) and in SQL (`app.quality_rule_problem`, where admins write through PostgREST)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.quality.rules import CATALOGUE, FIELDS, KINDS, rule_problem

CASES: list[tuple[str, str, Any]] = [
    ("last_name", "required", {}),
    ("email", "email", {}),
    ("email", "email", {"strict": True}),
    ("phone", "email", {}),
    ("email", "phone", {}),
    ("phone", "not_ota_email", {}),
    ("shoe_size", "required", {}),
    ("email", "fancy", {}),
    ("email", "required", None),
    ("email", "required", []),
    ("title", "pattern", {"regex": "^(Mr|Ms)$"}),
    ("title", "pattern", {"pattern": "^A"}),
    ("title", "pattern", {}),
    ("title", "pattern", {"regex": 5}),
    ("title", "pattern", {"regex": "((a+))+$"}),
    ("birth_date", "pattern", {"regex": "^1"}),
    ("title", "allowed_values", {"values": ["Mr", "Ms"]}),
    ("title", "allowed_values", {"values": []}),
    ("title", "allowed_values", {"values": "Mr"}),
    ("title", "allowed_values", {"values": ["Mr", 1]}),
    ("title", "allowed_values", {"values": [""]}),
    ("title", "allowed_values", {"values": ["x" * 101]}),
    ("title", "allowed_values", {"values": ["v"] * 201}),
    ("first_name", "length", {"min": 2}),
    ("first_name", "length", {"max": 2000}),
    ("first_name", "length", {"min": -1}),
    ("first_name", "length", {"min": 2.5}),
    ("first_name", "length", {"min": "2"}),
    ("first_name", "length", {"min": True}),
    ("first_name", "length", {"min": 5, "max": 2}),
    ("first_name", "length", {}),
    ("birth_date", "date_range", {"min_years_ago": 14, "max_years_ago": 110}),
    ("birth_date", "date_range", {"min_years_ago": 90, "max_years_ago": 10}),
    ("birth_date", "date_range", {"max_years_ago": 201}),
    ("email", "date_range", {"max_years_ago": 20}),
    ("first_name", "cross_field", {"other": "last_name", "op": "differs"}),
    ("first_name", "cross_field", {"other": "first_name", "op": "differs"}),
    ("first_name", "cross_field", {"other": "shoe_size", "op": "differs"}),
    ("first_name", "cross_field", {"other": "last_name", "op": "like"}),
    ("first_name", "cross_field", {"other": "last_name", "op": "before"}),
    ("first_name", "cross_field", {"other": "last_name"}),
    ("first_name", "cross_field", {"op": "equals", "other": "last_name", "also": 1}),
]


@pytest.fixture(scope="module")
def conn(database_factory: Any) -> Iterator[psycopg.Connection]:
    name = database_factory.create()
    try:
        with psycopg.connect(database_factory.url_of(name), autocommit=True) as conn:
            yield conn
    finally:
        database_factory.drop(name)


def sql_problem(conn: psycopg.Connection, field: str, kind: str, params: Any) -> str | None:
    row = conn.execute(
        "select app.quality_rule_problem(%s, %s, %s::jsonb)", (field, kind, json.dumps(params))
    ).fetchone()
    return row[0] if row else None


@pytest.mark.parametrize(("field", "kind", "params"), CASES)
def test_python_and_sql_say_the_same_of_a_rule(
    conn: psycopg.Connection, field: str, kind: str, params: Any
) -> None:
    assert rule_problem(field, kind, params) == sql_problem(conn, field, kind, params)


def test_the_cases_cover_every_kind_and_both_verdicts() -> None:
    assert {kind for _, kind, _ in CASES} >= set(KINDS)
    verdicts = {rule_problem(*case) is None for case in CASES}
    assert verdicts == {True, False}


PARAM_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-5, max_value=1500),
    st.sampled_from(["", "x", "last_name", "birth_date", "differs", "before", "^A+$", "(a+)+"]),
    st.lists(st.sampled_from(["", "Mr", "x" * 101]), max_size=3),
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    field=st.sampled_from([*FIELDS, "shoe_size"]),
    kind=st.sampled_from([*KINDS, "fancy"]),
    params=st.dictionaries(
        st.sampled_from(
            sorted({p.name for spec in CATALOGUE.values() for p in spec.params} | {"extra"})
        ),
        PARAM_VALUES,
        max_size=3,
    ),
)
def test_any_rule_gets_the_same_verdict_in_python_and_sql(
    conn: psycopg.Connection, field: str, kind: str, params: dict[str, Any]
) -> None:
    assert rule_problem(field, kind, params) == sql_problem(conn, field, kind, params)
