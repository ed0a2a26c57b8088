"""Rules files: what dump writes, load reads back unchanged; every refusal names the line, the
rule and the key."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.quality.rules import DEFAULT_RULES
from shared.quality.rules_file import RulesFile, RulesFileError, dump, load, problems
from tests.quality.strategies import RULES
from tests.support.rows import ENTERPRISE_ID

HEAD = f"enterprise: {ENTERPRISE_ID}\nrules:\n"


def test_the_hotel_defaults_round_trip_exactly() -> None:
    original = RulesFile(ENTERPRISE_ID, tuple(DEFAULT_RULES), "hotel defaults")
    assert load(dump(original, header=["exported"])) == original


@given(
    rules=RULES,
    note=st.one_of(st.none(), st.text(max_size=40)),
    threshold=st.one_of(st.none(), st.integers(500_000, 999_999).map(lambda n: n / 1_000_000)),
)
def test_any_valid_rule_set_round_trips_exactly(
    rules: list,  # type: ignore[type-arg]
    note: str | None,
    threshold: float | None,
) -> None:
    original = RulesFile(ENTERPRISE_ID, tuple(rules), note, threshold)
    assert load(dump(original)) == original


def test_the_duplicate_threshold_is_written_on_one_line_before_the_rules() -> None:
    text = dump(RulesFile(ENTERPRISE_ID, (), "n", 0.92))
    assert text.splitlines()[:4] == [
        f"enterprise: {ENTERPRISE_ID}",
        "note: n",
        "duplicates: {threshold: 0.92}",
        "rules: []",
    ]


def test_dump_writes_parameters_on_one_line_and_the_header_as_comments() -> None:
    text = dump(RulesFile(ENTERPRISE_ID, tuple(DEFAULT_RULES[8:9])), header=["from version 3"])
    assert text.splitlines() == [
        "# from version 3",
        f"enterprise: {ENTERPRISE_ID}",
        "rules:",
        "  - field: birth_date",
        "    kind: date_range",
        "    params: {max_years_ago: 110, min_years_ago: 14}",
        "    severity: warning",
        "    weight: 5",
    ]


def test_a_rule_without_severity_is_a_warning_and_without_params_has_none() -> None:
    loaded = load(HEAD + "  - {field: phone, kind: required, weight: 15}\n")
    assert (loaded.rules[0].severity, loaded.rules[0].params) == ("warning", {})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            HEAD + "  - field: email\n    kind: email\n    wieght: 3\n",
            "f.yaml:5: rule 1: email rule on email: unknown key wieght"
            " (keys: field, kind, params, severity, weight)",
        ),
        (
            HEAD + "  - field: first_name\n    kind: length\n    params: {min: 5, max: 2}\n"
            "    weight: 3\n",
            "f.yaml:5: rule 1: length rule on first_name: min (5) is greater than max (2)",
        ),
        (
            HEAD
            + "  - field: title\n    kind: pattern\n    params: {regexp: '^M'}\n    weight: 3\n",
            "f.yaml:5: rule 1: pattern rule on title: unknown parameter regexp (allowed: regex)",
        ),
        (
            HEAD + "  - field: shoe_size\n    kind: required\n    weight: 3\n",
            "f.yaml:3: rule 1: required rule on shoe_size: unknown field shoe_size",
        ),
        (
            HEAD + "  - field: phone\n    kind: required\n",
            "f.yaml:3: rule 1: required rule on phone: key weight is required",
        ),
        (
            HEAD + "  - field: phone\n    kind: required\n    weight: 101\n",
            "f.yaml:5: rule 1: required rule on phone: weight must be a whole number from 0 to 100",
        ),
        (
            HEAD + "  - field: phone\n    kind: required\n    weight: 5\n    severity: fatal\n",
            "f.yaml:6: rule 1: required rule on phone: severity is one of info, warning, error",
        ),
        (
            HEAD + "  - field: phone\n    kind: required\n    weight: 5\n    weight: 6\n",
            "f.yaml:6: rule 1: repeated key weight",
        ),
        (
            HEAD + "  - phone\n",
            "f.yaml:3: rule 1: a rule must be a mapping of field, kind, params, severity, weight",
        ),
        (
            f"enterprise: {ENTERPRISE_ID}\ncolour: blue\nrules: []\n",
            "f.yaml:2: top level: unknown key colour (keys: enterprise, note, duplicates, rules)",
        ),
        (
            "enterprise: alpha\nrules: []\n",
            "f.yaml:1: enterprise must be an enterprise id (a UUID), not 'alpha'",
        ),
        (
            f"enterprise: {ENTERPRISE_ID}\nrules: [\n",
            "f.yaml:3: not YAML: expected the node content, but found '<stream end>'",
        ),
        ("", "f.yaml:1: empty file: expected enterprise, note and rules"),
        (
            f"enterprise: {ENTERPRISE_ID}\nduplicates: {{threshold: 0.4}}\nrules: []\n",
            "f.yaml:2: duplicates: threshold is a probability at least 0.5 and below 1, not 0.4",
        ),
        (
            f"enterprise: {ENTERPRISE_ID}\nduplicates: {{threshold: yes}}\nrules: []\n",
            "f.yaml:2: duplicates: threshold is a probability at least 0.5 and below 1, not True",
        ),
        (
            f"enterprise: {ENTERPRISE_ID}\nduplicates: {{treshold: 0.9, threshold: 0.9}}\nrules: []\n",
            "f.yaml:2: duplicates: unknown key treshold (keys: threshold)",
        ),
        (
            f"enterprise: {ENTERPRISE_ID}\nduplicates: 0.9\nrules: []\n",
            "f.yaml:2: duplicates must be a mapping (threshold)",
        ),
    ],
)
def test_a_refusal_names_the_line_the_rule_and_the_key(text: str, expected: str) -> None:
    assert problems(text, "f.yaml") == [expected]


def test_every_problem_is_reported_in_line_order() -> None:
    text = (
        f"enterprise: {ENTERPRISE_ID}\n"
        "rules:\n"
        "  - {field: phone, kind: required, weight: 15}\n"
        "  - {field: email, kind: phone, weight: 3}\n"
        "  - {field: title, kind: required, weigth: 3}\n"
        "colour: blue\n"
    )
    assert problems(text, "f.yaml") == [
        "f.yaml:4: rule 2: phone rule on email: phone applies to the phone field only",
        "f.yaml:5: rule 3: required rule on title: unknown key weigth"
        " (keys: field, kind, params, severity, weight)",
        "f.yaml:6: top level: unknown key colour (keys: enterprise, note, duplicates, rules)",
    ]


def test_a_misspelt_top_level_key_is_named_and_the_missing_one_too() -> None:
    assert problems(f"enterprise: {ENTERPRISE_ID}\nrule:\n  - {{}}\n", "f.yaml") == [
        "f.yaml:1: key rules is required",
        "f.yaml:2: top level: unknown key rule (keys: enterprise, note, duplicates, rules)",
    ]


def test_load_refuses_a_file_with_problems_and_lists_them_all() -> None:
    with pytest.raises(RulesFileError) as refused:
        load(
            HEAD
            + "  - {field: a, kind: required, weight: 1}\n  - {field: b, kind: required, weight: 1}\n",
            "f.yaml",
        )
    assert len(refused.value.problems) == 2


def test_python_objects_in_yaml_are_refused_not_built() -> None:
    found = problems("enterprise: !!python/object/apply:os.system [echo hi]\nrules: []\n", "f")
    assert found == [
        "f:1: not YAML: could not determine a constructor for the tag"
        " 'tag:yaml.org,2002:python/object/apply:os.system'"
    ]
