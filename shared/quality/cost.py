"""What a rule set costs to score, and the bounds every set must keep (pure).

One admin's rule set must not stall scoring for the other hotels: each rule is checked on its
own (:mod:`shared.quality.patterns`), and the set as a whole is bounded here. The scorer reads,
per guest, whether each field a rule names is present, then each rule's verdict; what that
costs was measured (``python -m bench.rule_cost``) and is priced in *cost units*, one unit being
about what a ``required`` rule on an already-read field adds per guest:

* every distinct field the set reads: 6 units (its presence, computed once per guest);
* a rule: ``KIND_COST`` of its kind; a pattern rule also half its *pattern size*.

A pattern's size estimates how large PostgreSQL's compiled automaton is: one per literal,
class or ``.``; ``*`` and ``+`` count their atom twice; a bound ``{n}`` repeats its atom n
times, ``{n,m}`` counts it m + (m − n) times (each optional copy is one more state the matcher
keeps alive), ``{n,}`` n + 2 times; a group counts its contents (every branch). ``[a-z]{0,200}``
is 400, ``.*a.{60}`` is 63, a 200-letter literal is 200.

The bounds (``BOUNDS``): how many rules, how many distinct patterns (PostgreSQL keeps the 32
most recently used compiled expressions per connection: a set with more recompiles each one for
every guest), the sum of the distinct patterns' sizes, and the set's total cost. The default
hotel set costs 94 units; the most expensive set the bounds accept scores in about twice its
time (see docs/QUALITY.md).

``app.quality_pattern_size`` and ``app.quality_rule_set_problem`` (SQL) compute the same, word
for word; a test holds the two together.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

FIELD_COST = 6
KIND_COST: dict[str, int] = {
    "required": 1,
    "allowed_values": 2,
    "email": 3,
    "phone": 3,
    "not_ota_email": 3,
    "date_range": 4,
    "length": 10,
    "cross_field": 18,
    "pattern": 16,
}
MAX_RULES = 50
MAX_PATTERNS = 10
MAX_PATTERN_SIZE = 300
MAX_COST = 200


@dataclass(frozen=True)
class SetCost:
    """A rule set's measures, each compared with its bound."""

    rules: int
    patterns: int
    pattern_size: int
    cost: int


def _bracket_end(pattern: str, start: int) -> int:
    """The index of the ``]`` closing the bracket expression opened at ``start``."""
    index = start + 1
    if index < len(pattern) and pattern[index] == "^":
        index += 1
    while index < len(pattern) and pattern[index] != "]":
        index += 2 if pattern[index] == "\\" else 1
    return index


def _bound(pattern: str, start: int) -> tuple[int, int]:
    """How many times the bound opened at ``start`` counts its atom, and where it ends."""
    end = pattern.index("}", start)
    low, comma, high = pattern[start + 1 : end].partition(",")
    if not comma:
        return int(low), end
    if not high:
        return int(low) + 2, end
    return 2 * int(high) - int(low), end


def pattern_size(pattern: str) -> int:
    """The size of an accepted pattern (see the module docstring); 0 for the empty pattern."""
    totals: list[int] = []
    total = last = index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "(":
            totals.append(total)
            total = last = 0
        elif char == ")":
            last = total
            total = totals.pop() + total
        elif char in "|^$?":
            last = 0
        elif char in "*+":
            total, last = total + last, 0
        elif char == "{":
            times, index = _bound(pattern, index)
            total, last = total + last * (times - 1), 0
        else:
            if char == "\\":
                index += 1
            elif char == "[":
                index = _bracket_end(pattern, index)
            total, last = total + 1, 1
        index += 1
    return total


def rule_fields(kind: str, field: str, params: dict[str, Any]) -> tuple[str, ...]:
    other = params.get("other")
    if kind == "cross_field" and isinstance(other, str):
        return (field, other)
    return (field,)


def measure(rules: Iterable[tuple[str, str, dict[str, Any]]]) -> SetCost:
    """The measures of a set of (field, kind, params) rules."""
    count = 0
    fields: set[str] = set()
    patterns: set[str] = set()
    cost = 0
    for field, kind, params in rules:
        count += 1
        fields.update(rule_fields(kind, field, params))
        cost += KIND_COST.get(kind, 0)
        regex = params.get("regex")
        if kind == "pattern" and isinstance(regex, str):
            patterns.add(regex)
            cost += pattern_size(regex) // 2
    size = sum(pattern_size(regex) for regex in patterns)
    return SetCost(count, len(patterns), size, cost + FIELD_COST * len(fields))


def set_problem(measures: SetCost) -> str | None:
    """Which bound a set exceeds, in the words app.quality_rule_set_problem uses; None if none."""
    if measures.rules > MAX_RULES:
        return f"a rule set holds at most {MAX_RULES} rules (this one: {measures.rules})"
    if measures.patterns > MAX_PATTERNS:
        return (
            f"a rule set uses at most {MAX_PATTERNS} distinct patterns"
            f" (this one: {measures.patterns})"
        )
    if measures.pattern_size > MAX_PATTERN_SIZE:
        return (
            f"the patterns of a rule set may together be of size {MAX_PATTERN_SIZE} at most"
            f" (this one: {measures.pattern_size}; a bound {{n,m}} counts its part m + (m − n) times)"
        )
    if measures.cost > MAX_COST:
        return (
            f"the rule set costs {measures.cost} units to score, more than the limit of"
            f" {MAX_COST} (the default set costs 94; see docs/QUALITY.md)"
        )
    return None
