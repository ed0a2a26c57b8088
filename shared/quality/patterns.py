"""Is an admin's ``pattern`` rule safe and portable? (pure)

A pattern is evaluated by two engines that must agree: PostgreSQL's ARE engine (the SQL scorer,
``left(value, 255) !~ pattern``) and Python's ``regex`` package (``re`` semantics, a timeout).
``pattern_problem`` parses the pattern with a small recursive-descent parser over a subset both
engines read alike, then walks the structure it built. ``app.quality_pattern_problem`` in
supabase/migrations/20261125000200_quality_pattern_check.sql is the same algorithm in PL/pgSQL,
with the same messages; keep the two in step.

Accepted grammar (anything else is refused, with one sentence saying why)::

    pattern     := alternation                      1..200 characters
    alternation := sequence ('|' sequence)*         empty branches allowed
    sequence    := item*
    item        := '^' | '$' | atom quantifier?     an anchor takes no quantifier
    atom        := literal | '.' | escape | bracket | '(' alternation ')'
    literal     := any character but \\ . [ ] ( ) | * + ? { } ^ $
    escape      := '\\' ('d' | 'D' | 'w' | 'W' | 's' | 'S' | ASCII punctuation, space or control)
    bracket     := '[' '^'? member+ ']'
    member      := '-' (first or last only) | single ('-' single)? | class escape
    single      := a character but \\ [ ] or '-', or '\\' + ASCII punctuation/space/control
    quantifier  := '*' | '+' | '?' | '{' n '}' | '{' n ',}' | '{' n ',' m '}'    0 <= n <= m <= 255

Refused on the way: back-references (``\\1``), every other letter escape (``\\b``, ``\\A``,
``\\n``…), a lone trailing backslash, every ``(?…)`` group, a lone ``]`` or ``}``, a ``{``
that is not a bound, a quantifier with nothing before it (start, ``(``, ``|``, an anchor) or
right after another one (lazy ``*?``, ``a**``); inside brackets: an empty set (``[]``, so ``]``
first is never a member), POSIX ``[:…:]``, ``[=…=]``, ``[.….]``, any other unescaped ``[``, a
``-`` that is neither first, last nor between two single characters (``[a-c-e]``, ``[\\d-z]``),
a descending range, and a doubled ``&&``, ``~~``, ``||`` (Python reserves those for set
operations).

Safety rules, on the parsed structure. A quantifier *repeats* when its maximum is above 1
(``*``, ``+``, ``{n,}``, ``{n,m}`` with m > 1, ``{n}`` with n > 1); for overlaps (rule 4) only
a *variable* count matters (``{n}`` matches one way).

1. A repeating quantifier may not apply to a group that holds any quantifier, at any depth.
2. A repeating quantifier may not apply to a group that holds an alternation, at any depth.
3. A repeating quantifier may not apply to something that can match the empty string.
4. Overlap: in one sequence, items i < j with only nullable items between them, i *ends
   repeating*, j *starts repeating* and last(i) ∩ first(j) ≠ ∅ are refused (``a*a*``,
   ``\\d+\\d+``, ``(x+)(x+)``). A repeated atom starts and ends repeating; a group does when it
   is repeated or holds an item that does.
5. Ambiguity degree (an addition to the four rules above): rules 1-4 still let ``(a|aa)`` ×30,
   ``a?a`` ×60 or ``(ab)+(ab)+(ab)+`` through, whose backtracking grows exponentially or as a
   high power of the input length (``(a|aa)`` ×32 outruns a 10 s ``regex`` timeout on 49
   characters). An item is *ambiguous* when it can match strings of different lengths or
   choose between alternatives that can start alike: degree 1 for ``?``, ``*``, ``+``,
   ``{n,m}`` with n < m, or an alternation whose branches share a first character or have a
   nullable branch next to another; a group's degree is its contents'. Along a sequence,
   item s *feeds* a later item t when chars(s) ∩ first(items s+1..t) ≠ ∅ (s could give
   characters to what follows it); degrees add along a chain of feeding items, take the
   maximum across branches, and may not exceed 2 (``.*a.*b`` passes, ``.*a.*a.*b`` does not).

Sets: first(x) = characters x can begin with, last(x) = characters it can end with, chars(x) =
characters it can consume; for a sequence, first is the union up to and including the first
non-nullable item, last symmetrically; a group takes the union over its branches. Nullable:
quantifier minimum 0, anchors, empty groups and branches, a group with a nullable branch.
A character set is 129 bits: ASCII 0..127 plus one bucket for every non-ASCII character.
``.``, negated brackets, ``\\D``, ``\\W``, ``\\S`` include the bucket; ``\\w`` is letters,
digits, underscore and the bucket (both engines count Unicode letters as word characters);
``\\s`` is space, \\t \\n \\v \\f \\r only (non-ASCII spaces count, in the bucket, only for
negated sets); ``\\d`` is 0-9; a literal or range end above 127 sets the bucket.

Last, the pattern must compile (Python: ``re.compile``; SQL: the pattern is tried in PostgreSQL);
only that step's message may differ between the two implementations.

What a pattern check cannot settle, because it is about values: Python's ``.`` does not match a
newline and its ``$`` also matches before a final newline (PostgreSQL: ``.`` matches it, ``$``
only at the end); Python's ``\\s`` also matches \\x1c-\\x1f and Unicode spaces, its ``\\d``
Unicode digits (PostgreSQL: per the database's locale). Values with those characters can be
judged differently by the two scorers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import reduce
from operator import or_

MAX_PATTERN_LENGTH = 200
MAX_BOUND = 255  # PostgreSQL's limit on {n,m}
MAX_DEGREE = 2

_UNBOUNDED = MAX_BOUND + 1  # the maximum of *, + and {n,}
_BUCKET = 128  # the bit of every non-ASCII character
_ALL = (1 << 129) - 1
_QUANTIFIERS = "*+?{"
_DIGITS = "0123456789"

EMPTY = "the pattern is empty"
TOO_LONG = f"the pattern is longer than {MAX_PATTERN_LENGTH} characters"
TRAILING_BACKSLASH = "the pattern ends with a lone backslash"
BACK_REFERENCE = "back-references are not allowed"
GROUP_EXTENSION = (
    "(?…) groups — look-arounds, flags, non-capturing or named groups — are not allowed"
)
UNMATCHED_CLOSE = "unbalanced parentheses: ) without a matching ("
UNCLOSED_GROUP = "unbalanced parentheses: ( is never closed"
LONE_BRACKET = r"unescaped ]; write \] for a literal bracket"
LONE_BRACE = r"unescaped }; write \} for a literal brace"
BAD_BRACE = r"{ must start a bound {n}, {n,} or {n,m}; write \{ for a literal brace"
BOUND_LIMIT = f"repetition bounds must be between 0 and {MAX_BOUND}"
BOUND_ORDER = "in a bound {n,m}, n must not be greater than m"
NOTHING_TO_REPEAT = "a quantifier needs something to repeat (not the start, (, | or an anchor)"
DOUBLE_QUANTIFIER = (
    "a quantifier may not follow another quantifier (lazy and possessive forms are not supported)"
)
UNTERMINATED_BRACKET = "unterminated bracket expression ["
EMPTY_BRACKET = r"a bracket expression may not be empty; write \] for a literal bracket"
POSIX_CLASS = r"POSIX classes ([:alpha:], [=a=], [.a.]) are not supported; use \d, \w, \s or ranges"
NESTED_BRACKET = r"unescaped [ inside a bracket expression; write \["
BRACKET_DASH = "a - inside a bracket expression must come first, last, or between the two characters of a range"
DESCENDING_RANGE = "a range in a bracket expression may not go from a higher to a lower character"
SET_OPERATOR = "&&, ~~ and || inside a bracket expression must be escaped"
NESTED_QUANTIFIERS = "nested quantifiers: a repeated group may not contain a quantifier"
REPEATED_ALTERNATIVES = "a repeated group may not contain alternatives (|)"
EMPTY_REPEAT = "a repeated part may not match the empty string"
OVERLAP = "overlapping quantifiers: two adjacent repeated parts can match the same characters"
AMBIGUOUS = "too many ambiguous parts: at most two optional, repeated or alternative parts may compete for the same characters"
INVALID_PREFIX = "invalid regular expression: "


def _escape_problem(char: str) -> str:
    return f"escape \\{char} is not supported; use \\d, \\w, \\s or escape punctuation"


def _bits(low: int, high: int) -> int:
    """The set of code points low..high (the bucket for any above 127)."""
    bits = 0
    if low <= 127:
        bits = ((1 << (min(high, 127) + 1)) - 1) ^ ((1 << low) - 1)
    if high > 127:
        bits |= 1 << _BUCKET
    return bits


def _negate(bits: int) -> int:
    return (_ALL ^ bits) | (1 << _BUCKET)


_DIGIT = _bits(48, 57)
_WORD = _DIGIT | _bits(65, 90) | _bits(95, 95) | _bits(97, 122) | (1 << _BUCKET)
_SPACE = _bits(9, 13) | _bits(32, 32)
_CLASSES = {
    "d": _DIGIT,
    "D": _negate(_DIGIT),
    "w": _WORD,
    "W": _negate(_WORD),
    "s": _SPACE,
    "S": _negate(_SPACE),
}


@dataclass(frozen=True, slots=True)
class _Part:
    """What the safety rules need to know of an item, a sequence or an alternation."""

    nullable: bool
    first: int
    last: int
    chars: int
    has_quantifier: bool
    has_alternation: bool
    starts_repeating: bool
    ends_repeating: bool
    degree: int


_ANCHOR = _Part(True, 0, 0, 0, False, False, False, False, 0)


def _char_set(bits: int) -> _Part:
    return _Part(False, bits, bits, bits, False, False, False, False, 0)


class _RefusedError(Exception):
    """Carries the one sentence that says what is wrong."""


class _Parser:
    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.pos = 0

    def peek(self, ahead: int = 0) -> str:
        """The character ``ahead`` places on ('' past the end)."""
        at = self.pos + ahead
        return self.pattern[at] if at < len(self.pattern) else ""

    def at_quantifier(self) -> bool:
        return self.peek() != "" and self.peek() in _QUANTIFIERS

    # --- structure -----------------------------------------------------------------------

    def alternation(self) -> _Part:
        branches = [self.sequence()]
        while self.peek() == "|":
            self.pos += 1
            branches.append(self.sequence())
        seen = 0
        overlapping = False
        for branch in branches:
            overlapping = overlapping or bool(branch.first & seen)
            seen |= branch.first
        several = len(branches) > 1
        choice = several and (overlapping or any(b.nullable for b in branches))
        return _Part(
            nullable=any(b.nullable for b in branches),
            first=_union(b.first for b in branches),
            last=_union(b.last for b in branches),
            chars=_union(b.chars for b in branches),
            has_quantifier=any(b.has_quantifier for b in branches),
            has_alternation=several or any(b.has_alternation for b in branches),
            starts_repeating=any(b.starts_repeating for b in branches),
            ends_repeating=any(b.ends_repeating for b in branches),
            degree=max([1 if choice else 0, *(b.degree for b in branches)]),
        )

    def sequence(self) -> _Part:
        items: list[_Part] = []
        chains: list[int] = []  # per item: the largest degree of a feeding chain ending there
        first = last = 0
        opening = True  # every item so far is nullable
        while self.peek() not in ("", "|", ")"):
            item = self.item()
            _check_overlap(items, item)
            chains.append(_chain_degree(items, chains, item))
            items.append(item)
            if opening:
                first |= item.first
                opening = item.nullable
            last = last | item.last if item.nullable else item.last
        return _Part(
            nullable=opening,
            first=first,
            last=last,
            chars=_union(i.chars for i in items),
            has_quantifier=any(i.has_quantifier for i in items),
            has_alternation=any(i.has_alternation for i in items),
            starts_repeating=any(i.starts_repeating for i in items),
            ends_repeating=any(i.ends_repeating for i in items),
            degree=max(chains, default=0),
        )

    def item(self) -> _Part:
        char = self.peek()
        if self.at_quantifier():
            self.quantifier()
            raise _RefusedError(NOTHING_TO_REPEAT)
        if char in "^$":
            self.pos += 1
            return _ANCHOR
        atom = self.atom()
        if not self.at_quantifier():
            return atom
        low, high = self.quantifier()
        if self.at_quantifier():
            self.quantifier()
            raise _RefusedError(DOUBLE_QUANTIFIER)
        repeating = high > 1
        if repeating:
            if atom.has_quantifier:
                raise _RefusedError(NESTED_QUANTIFIERS)
            if atom.has_alternation:
                raise _RefusedError(REPEATED_ALTERNATIVES)
            if atom.nullable:
                raise _RefusedError(EMPTY_REPEAT)
        return _Part(
            nullable=atom.nullable or low == 0,
            first=atom.first,
            last=atom.last,
            chars=atom.chars,
            has_quantifier=True,
            has_alternation=atom.has_alternation,
            # only a variable count can overlap its neighbour: \d{3}\d{4} has one way to match
            starts_repeating=atom.starts_repeating or (repeating and low < high),
            ends_repeating=atom.ends_repeating or (repeating and low < high),
            degree=max(atom.degree, 1) if low < high else atom.degree,
        )

    def atom(self) -> _Part:
        char = self.peek()
        if char == "(":
            self.pos += 1
            if self.peek() == "?":
                raise _RefusedError(GROUP_EXTENSION)
            inner = self.alternation()
            if self.peek() != ")":
                raise _RefusedError(UNCLOSED_GROUP)
            self.pos += 1
            return inner
        if char == "[":
            return _char_set(self.bracket())
        if char == "]":
            raise _RefusedError(LONE_BRACKET)
        if char == "}":
            raise _RefusedError(LONE_BRACE)
        if char == "\\":
            return _char_set(self.escape()[0])
        self.pos += 1
        if char == ".":
            return _char_set(_ALL)
        return _char_set(_bits(ord(char), ord(char)))

    # --- tokens --------------------------------------------------------------------------

    def quantifier(self) -> tuple[int, int]:
        """``*``, ``+``, ``?`` or a bound at pos: (minimum, maximum), _UNBOUNDED for none."""
        char = self.peek()
        self.pos += 1
        if char == "*":
            return 0, _UNBOUNDED
        if char == "+":
            return 1, _UNBOUNDED
        if char == "?":
            return 0, 1
        low = self.digits()
        high = low
        if low == "":
            raise _RefusedError(BAD_BRACE)
        if self.peek() == ",":
            self.pos += 1
            high = self.digits()
        if self.peek() != "}":
            raise _RefusedError(BAD_BRACE)
        self.pos += 1
        minimum = _bound(low)
        maximum = _UNBOUNDED if high == "" else _bound(high)
        if minimum > maximum:
            raise _RefusedError(BOUND_ORDER)
        return minimum, maximum

    def digits(self) -> str:
        start = self.pos
        while self.peek() != "" and self.peek() in _DIGITS:
            self.pos += 1
        return self.pattern[start : self.pos]

    def escape(self) -> tuple[int, bool, int]:
        """The escape at pos (a backslash): its set, whether it is a class, its code point."""
        self.pos += 1
        char = self.peek()
        if char == "":
            raise _RefusedError(TRAILING_BACKSLASH)
        self.pos += 1
        if char in _DIGITS:
            raise _RefusedError(BACK_REFERENCE)
        if char in _CLASSES:
            return _CLASSES[char], True, -1
        code = ord(char)
        if code > 127 or (char.isascii() and char.isalpha()):
            raise _RefusedError(_escape_problem(char))
        return _bits(code, code), False, code

    def bracket(self) -> int:
        """The bracket expression at pos (its '['): the set it matches."""
        self.pos += 1
        negated = self.peek() == "^"
        if negated:
            self.pos += 1
        if self.peek() == "]":
            raise _RefusedError(EMPTY_BRACKET)
        bits = 0
        first_member = True
        while self.peek() != "]":
            char = self.peek()
            self.no_bracket_hazard()
            if char == "-":
                if not first_member and self.peek(1) != "]":
                    raise _RefusedError(BRACKET_DASH)
                self.pos += 1
                bits |= _bits(45, 45)
            else:
                bits |= self.bracket_member()
            first_member = False
        self.pos += 1
        return _negate(bits) if negated else bits

    def no_bracket_hazard(self) -> None:
        """Refuse what ends, nests or doubles at pos inside a bracket expression."""
        char = self.peek()
        if char == "":
            raise _RefusedError(UNTERMINATED_BRACKET)
        if char == "[":
            raise _RefusedError(POSIX_CLASS if self.peek(1) in (":", "=", ".") else NESTED_BRACKET)
        if char in "&~|" and self.peek(1) == char:
            raise _RefusedError(SET_OPERATOR)
        if char == "-" and self.peek(1) == "":
            raise _RefusedError(UNTERMINATED_BRACKET)

    def bracket_member(self) -> int:
        """A single character, a class escape or a range, at pos inside brackets."""
        low, is_class, start = self.bracket_single()
        if self.peek() != "-" or self.peek(1) in ("]", ""):
            return low
        if is_class:
            raise _RefusedError(BRACKET_DASH)
        self.pos += 1
        self.no_bracket_hazard()
        if self.peek() == "-":
            raise _RefusedError(BRACKET_DASH)
        _, is_class, end = self.bracket_single()
        if is_class:
            raise _RefusedError(BRACKET_DASH)
        if end < start:
            raise _RefusedError(DESCENDING_RANGE)
        return _bits(start, end)

    def bracket_single(self) -> tuple[int, bool, int]:
        char = self.peek()
        if char == "\\":
            return self.escape()
        self.pos += 1
        return _bits(ord(char), ord(char)), False, ord(char)


def _union(sets: Iterable[int]) -> int:
    return reduce(or_, sets, 0)


def _bound(digits: str) -> int:
    if len(digits) > 3 or int(digits) > MAX_BOUND:
        raise _RefusedError(BOUND_LIMIT)
    return int(digits)


def _check_overlap(items: list[_Part], item: _Part) -> None:
    """Rule 4: ``item`` may not start repeating on what an earlier repeated neighbour ends with."""
    if not item.starts_repeating:
        return
    for earlier in reversed(items):
        if earlier.ends_repeating and earlier.last & item.first:
            raise _RefusedError(OVERLAP)
        if not earlier.nullable:
            return


def _chain_degree(items: list[_Part], chains: list[int], item: _Part) -> int:
    """Rule 5: the degree of the heaviest chain of feeding items that ends with ``item``."""
    if item.degree == 0:
        return 0
    follow = item.first  # first(items s+1..t) for the s looked at
    fed = 0
    for earlier, chain in zip(reversed(items), reversed(chains), strict=True):
        if chain > 0 and earlier.chars & follow:
            fed = max(fed, chain)
        follow = earlier.first | follow if earlier.nullable else earlier.first
    degree = item.degree + fed
    if degree > MAX_DEGREE:
        raise _RefusedError(AMBIGUOUS)
    return degree


def pattern_problem(pattern: str) -> str | None:
    """None when ``pattern`` is safe to use in a rule, else one sentence saying what is wrong."""
    if pattern == "":
        return EMPTY
    if len(pattern) > MAX_PATTERN_LENGTH:
        return TOO_LONG
    parser = _Parser(pattern)
    try:
        parser.alternation()
        if parser.peek() == ")":
            return UNMATCHED_CLOSE
    except _RefusedError as refused:
        return str(refused)
    try:
        re.compile(pattern)
    except re.error as err:
        return INVALID_PREFIX + str(err)
    return None
