"""A rule set's cost and bounds (shared/quality/cost.py), and app.quality_pattern_size and
app.quality_rule_set_problem saying the same in SQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings

from shared.quality import cost
from shared.quality.patterns import pattern_problem
from shared.quality.rules import DEFAULT_RULES
from tests.quality.test_patterns import ACCEPTED, PATTERNS

Entry = tuple[str, str, dict[str, Any]]


def pattern(regex: str, field: str = "email") -> Entry:
    return (field, "pattern", {"regex": regex})


def required(field: str) -> Entry:
    return (field, "required", {})


DEFAULTS: list[Entry] = [(r.field, r.kind, r.params) for r in DEFAULT_RULES]


@pytest.mark.parametrize(
    ("regex", "size"),
    [
        ("", 0),
        ("abc", 3),
        ("^abc$", 3),
        (r"\d", 1),
        (r"[a\]z]", 1),
        ("[^a-z]", 1),
        ("a*", 2),
        ("a+b?", 3),
        ("a{3}", 3),
        ("a{0,3}", 6),
        ("a{2,}", 4),
        ("[a-z]{0,200}", 400),
        (".*a.{60}", 63),
        ("(ab){255}", 510),
        ("(a|bc)d", 4),
        ("x" * 200, 200),
    ],
)
def test_a_pattern_size_counts_each_atom_as_often_as_the_automaton_holds_it(
    regex: str, size: int
) -> None:
    assert pattern_problem(regex) is None or regex == ""
    assert cost.pattern_size(regex) == size


def test_the_default_set_costs_94_units_and_keeps_every_bound() -> None:
    measures = cost.measure(DEFAULTS)
    assert measures == cost.SetCost(rules=14, patterns=0, pattern_size=0, cost=94)
    assert cost.set_problem(measures) is None


def test_a_set_of_more_rules_than_the_bound_is_refused_naming_the_bound() -> None:
    rules = [required("email")] * 51
    assert cost.set_problem(cost.measure(rules)) == (
        "a rule set holds at most 50 rules (this one: 51)"
    )


def test_eleven_distinct_patterns_are_refused_and_one_pattern_on_many_fields_counts_once() -> None:
    distinct = [pattern(f"^x{i}") for i in range(11)]
    assert cost.set_problem(cost.measure(distinct)) == (
        "a rule set uses at most 10 distinct patterns (this one: 11)"
    )
    same = [pattern("^x", field) for field in ("email", "phone", "first_name", "last_name")]
    assert cost.measure(same).patterns == 1
    assert cost.measure(same).pattern_size == 1


def test_patterns_whose_automata_together_are_too_large_are_refused() -> None:
    measures = cost.measure([pattern("[a-z]{0,200}")])
    assert measures.pattern_size == 400
    assert cost.set_problem(measures) == (
        "the patterns of a rule set may together be of size 300 at most (this one: 400;"
        " a bound {n,m} counts its part m + (m − n) times)"
    )


def test_a_set_over_its_cost_is_refused_with_its_cost_and_the_limit() -> None:
    rules = [*DEFAULTS, *[("email", "cross_field", {"other": "last_name", "op": "differs"})] * 7]
    measures = cost.measure(rules)
    assert measures.cost == 94 + 7 * 18 + 0  # last_name is read already
    assert cost.set_problem(measures) == (
        "the rule set costs 220 units to score, more than the limit of 200"
        " (the default set costs 94; see docs/QUALITY.md)"
    )


def test_a_cross_field_rule_reads_its_other_field_too() -> None:
    assert cost.measure([("first_name", "cross_field", {"other": "title", "op": "equals"})]) == (
        cost.SetCost(rules=1, patterns=0, pattern_size=0, cost=2 * cost.FIELD_COST + 18)
    )


# -- the same in SQL ------------------------------------------------------------------------------


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


def sql_size(conn: psycopg.Connection, regex: str) -> int:
    row = conn.execute("select app.quality_pattern_size(%s)", (regex,)).fetchone()
    assert row is not None
    return int(row[0])


def sql_set_problem(conn: psycopg.Connection, rules: list[Entry]) -> str | None:
    entries = [{"field": f, "kind": k, "params": p} for f, k, p in rules]
    row = conn.execute(
        "select app.quality_rule_set_problem(%s::jsonb)", (json.dumps(entries),)
    ).fetchone()
    assert row is not None
    problem: str | None = row[0]
    return problem


def test_sql_sizes_the_accepted_patterns_as_python_does(conn: psycopg.Connection) -> None:
    expected = {regex: cost.pattern_size(regex) for regex in ACCEPTED}
    assert {regex: sql_size(conn, regex) for regex in ACCEPTED} == expected


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(regex=PATTERNS)
def test_python_and_sql_size_every_accepted_pattern_alike(
    conn: psycopg.Connection, regex: str
) -> None:
    if pattern_problem(regex) is None:
        assert sql_size(conn, regex) == cost.pattern_size(regex)


SETS: list[list[Entry]] = [
    [],
    DEFAULTS,
    [required("email")] * 50,
    [required("email")] * 51,
    [pattern(f"^x{i}") for i in range(10)],
    [pattern(f"^x{i}") for i in range(11)],
    [pattern("[a-z]{0,150}")],
    [pattern("[a-z]{0,151}")],
    [*DEFAULTS, *[("email", "cross_field", {"other": "last_name", "op": "differs"})] * 7],
    [*DEFAULTS, ("title", "allowed_values", {"values": ["Mr"]}), ("sex", "length", {"max": 1})],
    [pattern("x" * 200, field) for field in ("email", "phone", "title")],
]


@pytest.mark.parametrize("rules", SETS, ids=range(len(SETS)))
def test_python_and_sql_judge_a_set_in_the_same_words(
    conn: psycopg.Connection, rules: list[Entry]
) -> None:
    assert sql_set_problem(conn, rules) == cost.set_problem(cost.measure(rules))
