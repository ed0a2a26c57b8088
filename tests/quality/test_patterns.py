"""The pattern check refuses what can stall or diverge, in Python and in SQL alike.

shared/quality/patterns.py and app.quality_pattern_problem (supabase/migrations/
20261125000200_quality_pattern_check.sql) implement one algorithm: the same verdict and the same
message for every pattern; only a compile error's text may differ. Whatever both accept compiles
in both engines and matches the same strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from shared.quality import patterns as p
from shared.quality.patterns import MAX_PATTERN_LENGTH, pattern_problem

REFUSED: list[tuple[str, str]] = [
    # the safety rules
    ("(a+)+", p.NESTED_QUANTIFIERS),
    ("((a+))+$", p.NESTED_QUANTIFIERS),
    ("(([a-z]*)){1,255}b", p.NESTED_QUANTIFIERS),
    ("(a?)*", p.NESTED_QUANTIFIERS),
    ("(a{2})+", p.NESTED_QUANTIFIERS),
    ("(ab?){2}", p.NESTED_QUANTIFIERS),
    ("(a|a)*", p.REPEATED_ALTERNATIVES),
    ("(a|ab)+", p.REPEATED_ALTERNATIVES),
    ("((a|b))+", p.REPEATED_ALTERNATIVES),
    ("()*", p.EMPTY_REPEAT),
    ("(^)+", p.EMPTY_REPEAT),
    ("(|)+", p.REPEATED_ALTERNATIVES),
    ("a*a*", p.OVERLAP),
    (r"\d+\d+", p.OVERLAP),
    (".*.*=", p.OVERLAP),
    (r"\w+\d+", p.OVERLAP),
    ("(x+)(x+)", p.OVERLAP),
    ("a+b?a+", p.OVERLAP),
    ("[a-z]+(x)+", p.OVERLAP),
    (r"é+[^a]+", p.OVERLAP),
    (r"\d{2,3}\d+", p.OVERLAP),
    ("^(a|aa)(a|aa)(a|aa)$", p.AMBIGUOUS),
    ("^a?aa?aa?a$", p.AMBIGUOUS),
    ("a?a?a?", p.AMBIGUOUS),
    ("^(ab)+(ab)+(ab)+$", p.AMBIGUOUS),
    (".*a.*a.*b", p.AMBIGUOUS),
    ("(.*a.*b)x.*", p.AMBIGUOUS),
    # syntax outside the accepted subset
    (r"(a)\1", p.BACK_REFERENCE),
    (r"[\1]", p.BACK_REFERENCE),
    ("(?=a)", p.GROUP_EXTENSION),
    ("(?:a)", p.GROUP_EXTENSION),
    ("(?i)a", p.GROUP_EXTENSION),
    (r"\bword", "escape \\b is not supported; use \\d, \\w, \\s or escape punctuation"),
    (r"a\n", "escape \\n is not supported; use \\d, \\w, \\s or escape punctuation"),
    (r"\A", "escape \\A is not supported; use \\d, \\w, \\s or escape punctuation"),
    ("\\é", "escape \\é is not supported; use \\d, \\w, \\s or escape punctuation"),
    ("a\\", p.TRAILING_BACKSLASH),
    ("[a\\", p.TRAILING_BACKSLASH),
    ("[[:alpha:]]", p.POSIX_CLASS),
    ("[[=a=]]", p.POSIX_CLASS),
    ("[[.a.]]", p.POSIX_CLASS),
    ("[[a]", p.NESTED_BRACKET),
    ("[]", p.EMPTY_BRACKET),
    ("[^]", p.EMPTY_BRACKET),
    ("[]a]", p.EMPTY_BRACKET),
    ("[abc", p.UNTERMINATED_BRACKET),
    ("[a-", p.UNTERMINATED_BRACKET),
    ("[a-c-e]", p.BRACKET_DASH),
    (r"[\d-z]", p.BRACKET_DASH),
    (r"[a-\d]", p.BRACKET_DASH),
    ("[--a]", p.BRACKET_DASH),
    ("[z-a]", p.DESCENDING_RANGE),
    ("[a&&b]", p.SET_OPERATOR),
    ("[a||b]", p.SET_OPERATOR),
    ("a{2,1}", p.BOUND_ORDER),
    ("a{256}", p.BOUND_LIMIT),
    ("a{1,256}", p.BOUND_LIMIT),
    ("a{0255}", p.BOUND_LIMIT),
    ("a{99999999999999999999}", p.BOUND_LIMIT),
    ("x{", p.BAD_BRACE),
    ("a{,3}", p.BAD_BRACE),
    ("a{1, 3}", p.BAD_BRACE),
    ("{x", p.BAD_BRACE),
    ("a**", p.DOUBLE_QUANTIFIER),
    ("a+?", p.DOUBLE_QUANTIFIER),
    ("a{1}{2}", p.DOUBLE_QUANTIFIER),
    ("*a", p.NOTHING_TO_REPEAT),
    ("{2}", p.NOTHING_TO_REPEAT),
    ("(*a)", p.NOTHING_TO_REPEAT),
    ("a|?", p.NOTHING_TO_REPEAT),
    ("^*", p.NOTHING_TO_REPEAT),
    ("a$+", p.NOTHING_TO_REPEAT),
    ("(a", p.UNCLOSED_GROUP),
    ("a)", p.UNMATCHED_CLOSE),
    ("(a))(", p.UNMATCHED_CLOSE),
    ("a]", p.LONE_BRACKET),
    ("a}", p.LONE_BRACE),
    ("", p.EMPTY),
    ("a" * (MAX_PATTERN_LENGTH + 1), p.TOO_LONG),
]

ACCEPTED = [
    r"^\d{3}-?\d{4}$",  # fixed counts match one way
    "^[A-Z]{2}[0-9]{4,8}$",
    "[A-Z]+[0-9]+",
    r"^\d+(\.\d+)?$",
    r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$",
    "^(Mr|Mrs|Ms|Dr)$",
    r"^\+?[0-9 ]{6,20}$",
    "^(ab)+$",
    "[a-z]+-[a-z]+",
    "^$",
    r"\.",
    "^[A-Za-z' -]{1,100}$",
    r"^(19|20)\d\d-(0|1)\d-(0|1|2|3)\d$",
    ".*a.*b",
    "a?a?",
    "(ab)+a+",
    "[--]",
    "[-a]",
    "[a-]",
    r"[\.-z]",
    r"[\D\W\]\[]",
    "[^é]+x",
    "a|",
    "(|a)b",
    "a{0}b{1}c{0,1}",
    r"\ \#\{\}",
    "(" * 99 + "a" + ")" * 99,
    "a" * MAX_PATTERN_LENGTH,
]


@pytest.mark.parametrize(("pattern", "message"), REFUSED)
def test_a_refused_pattern_says_why(pattern: str, message: str) -> None:
    assert pattern_problem(pattern) == message


@pytest.mark.parametrize("pattern", ACCEPTED)
def test_a_safe_pattern_passes_and_compiles(pattern: str) -> None:
    assert pattern_problem(pattern) is None
    re.compile(pattern)


def test_every_message_is_one_sentence_without_a_final_period() -> None:
    for _, message in REFUSED:
        assert message
        assert not message.endswith(".")
        assert "\n" not in message


def test_a_pattern_python_cannot_compile_is_refused_with_its_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fail(pattern: str) -> re.Pattern[str]:
        raise re.error("bad luck", pattern, 0)

    monkeypatch.setattr(p.re, "compile", fail)
    assert pattern_problem("abc") == "invalid regular expression: bad luck at position 0"


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


def sql_problem(conn: psycopg.Connection, pattern: str | None) -> str | None:
    row = conn.execute("select app.quality_pattern_problem(%s)", (pattern,)).fetchone()
    assert row is not None
    problem: str | None = row[0]
    return problem


def test_sql_gives_the_same_verdicts_and_messages(conn: psycopg.Connection) -> None:
    expected: dict[str, str | None] = dict.fromkeys(ACCEPTED) | dict(REFUSED)
    assert {pattern: sql_problem(conn, pattern) for pattern in expected} == expected


def test_sql_treats_a_missing_pattern_as_empty(conn: psycopg.Connection) -> None:
    assert sql_problem(conn, None) == p.EMPTY


# what a pattern is made of: the common tokens weigh four times the odd ones
COMMON = [
    "a", "b", "x", "1", ".", r"\d", r"\w", r"\s", "[a-z]", "[^a]", "[0-9]", "[ab]",
    "(", ")", "|", "^", "$", "*", "+", "?", "{2}", "{1,3}", "{0,}",
]  # fmt: skip
ODD = [
    "é", " ", "@", "-", ",", ":", r"\D", r"\W", r"\S", r"\.", r"\-", r"\]", r"\1", r"\b",
    "\\", "[", "[^", "]", "(?:", "{0}", "{2,1}", "{", "}",
]  # fmt: skip
TOKENS = COMMON * 4 + ODD
ATOMS = [
    "a", "b", "x", "1", ".", r"\d", r"\w", r"\s", r"\D", "[a-z]", "[^a]", "[ab]", "[0-9]",
    "é", "@", r"\.", "-", "^", "$",
]  # fmt: skip
QUANTIFIERS = st.sampled_from(["", "", "", "*", "+", "?", "{2}", "{1,3}", "{0,}", "{0}"])


def _grown(parts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A sequence of parts, or a group of alternatives of parts with a quantifier."""
    several = st.lists(parts, min_size=1, max_size=3)
    return st.one_of(
        several.map("".join),
        st.tuples(several.map("|".join), QUANTIFIERS).map(lambda g: f"({g[0]}){g[1]}"),
    )


# token soup (mostly refused, every syntax path), and well-formed structures (the safety rules)
PATTERNS = st.one_of(
    st.lists(st.sampled_from(TOKENS), min_size=1, max_size=12).map("".join),
    st.recursive(st.tuples(st.sampled_from(ATOMS), QUANTIFIERS).map("".join), _grown, max_leaves=8),
)
# no newline: Python's "." skips it and its "$" matches before a final one, PostgreSQL's do not
SAMPLES = ["", "a", "b", "ab", "aab", "aaaa", "x1", "b-a", "a.b@x", " ", "é", "aé1", "a b", "[a]"]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    pattern=PATTERNS,
    extra=st.lists(st.text(alphabet="abx1é .-@[]\t", max_size=8), max_size=3),
)
@example(pattern="[a-c-e]", extra=[])
@example(pattern="(a|aa)(a|aa)(a|aa)", extra=[])
@example(pattern=r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", extra=["a@b.co", "a@b@c.de"])
def test_python_and_sql_agree(conn: psycopg.Connection, pattern: str, extra: list[str]) -> None:
    python = pattern_problem(pattern)
    sql = sql_problem(conn, pattern)
    compile_errors = (python or "").startswith(p.INVALID_PREFIX) and (sql or "").startswith(
        p.INVALID_PREFIX
    )
    if not compile_errors:  # only a compile error's text may differ
        assert python == sql
    if python is not None:
        return
    compiled = re.compile(pattern)
    conn.execute("select '' ~ %s", (pattern,))  # compiles in PostgreSQL too
    samples = SAMPLES + extra
    row = conn.execute(
        "select array_agg(s ~ %s order by n) from unnest(%s::text[]) with ordinality as t(s, n)",
        (pattern, samples),
    ).fetchone()
    assert row is not None
    assert row[0] == [compiled.search(s) is not None for s in samples]
