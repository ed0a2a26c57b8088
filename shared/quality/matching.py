"""Duplicate guests found by weighing evidence (Fellegi–Sunter), pure logic.

Every pair of profiles that shares a blocking key (e-mail, phone, e-mail local part, birth date
with a name's first letters, a name) is compared field by field. Each field lands on a level
("exact", "nickname", "day and month swapped", "different", …); each level has a match weight
``log2(m / u)``: m, how often one person's two profiles land there (a judgement, written below);
u, how often two different people do — measured on the chain's own guests (random pairs), and
for an exact value, the share of profiles holding that value (a common surname is weak evidence,
a rare one strong). The weights add up; with the prior odds of a pair being one person they give
a probability.

- A value held by more than ``uninformative`` profiles (a travel agency's e-mail, a placeholder
  birth date) neither blocks nor counts: the evidence says "shared by N profiles".
- Contact points are a household's, not a person's: families share an e-mail and a phone, so
  their weight is capped (``CONTACT_CAP``).
- A birth date or first name that conflicts is strong evidence against.
"""

from __future__ import annotations

import math
import random
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import Any, NamedTuple

from anyascii import anyascii
from rapidfuzz.distance import JaroWinkler

from shared.quality.nicknames import same_group

SIMILAR = 0.88  # Jaro–Winkler of folded names from which they are "similar"
CONTACT_CAP = 8.0  # most an e-mail or phone alone can weigh: a household shares them
UNINFORMATIVE = 20  # a contact value on more profiles says nothing about a pair
NAME_BLOCK_CAP = 10  # a name on more profiles is too common to pair on by name alone
BIRTH_NAME_BLOCK_CAP = 50  # a birth date with a name's first letters
SWAP_PENALTY = -1.0
PRIOR_SHARE = 0.02  # profiles that are the second entry of a person (prior odds)
GENERIC_LOCAL_PARTS = frozenset(
    {
        "info",
        "noemail",
        "no-email",
        "none",
        "test",
        "mail",
        "email",
        "reservations",
        "booking",
        "frontdesk",
        "reception",
        "contact",
        "office",
        "admin",
        "guest",
        "hotel",
        "na",
        "nomail",
    }
)

# m: how often one person's two profiles land on each level, given both have the field
M: dict[str, dict[str, float]] = {
    "first_name": {
        "exact": 0.78,
        "folded": 0.06,
        "nickname": 0.04,
        "initial": 0.03,
        "similar": 0.06,
        "different": 0.03,
    },
    "last_name": {"exact": 0.82, "folded": 0.07, "similar": 0.08, "different": 0.03},
    "birth_date": {
        "exact": 0.92,
        "day_month_swapped": 0.03,
        "one_digit_off": 0.04,
        "different": 0.00002,
    },
    "email": {"exact": 0.55, "same_local_part": 0.05, "different": 0.40},
    "phone": {"exact": 0.60, "different": 0.40},
}
LEVELS_WITH_VALUE = {"exact", "folded"}  # u is the share of profiles holding the value
_NONE: dict[Any, int] = {}


@dataclass(frozen=True)
class Guest:
    """What the matcher reads of a profile (e-mail normalised, OTA relays left out; E.164)."""

    id: str
    first_name: str | None = None
    last_name: str | None = None
    birth_date: date | None = None
    email: str | None = None
    phone: str | None = None


class Evidence(NamedTuple):
    field: str
    level: str
    weight: float
    detail: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "level": self.level,
            "weight": round(self.weight, 2),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Suggestion:
    a: str
    b: str
    weight: float
    probability: float
    evidence: tuple[Evidence, ...]


@dataclass(slots=True)
class Prepared:
    id: str
    first: str  # folded ("" when missing)
    last: str
    first_raw: str  # casefolded, accents kept
    last_raw: str
    birth: date | None
    email: str | None
    local: str | None
    phone: str | None


@lru_cache(maxsize=200_000)
def _fold(name: str) -> str:
    text = anyascii(unicodedata.normalize("NFKC", name)).lower()
    return " ".join(re.sub(r"[^a-z ]+", " ", text).split())


def fold(name: str | None) -> str:
    """Lower-case ASCII letters and single spaces (any script transliterated)."""
    return _fold(name) if name else ""


def prepare(guest: Guest) -> Prepared:
    email = guest.email.strip().lower() if guest.email and "@" in guest.email else None
    local = email.split("@", 1)[0].split("+", 1)[0] if email else None
    if local is not None and (len(local) < 3 or local in GENERIC_LOCAL_PARTS):
        local = None
    return Prepared(
        id=guest.id,
        first=fold(guest.first_name),
        last=fold(guest.last_name),
        first_raw=(guest.first_name or "").strip().casefold(),
        last_raw=(guest.last_name or "").strip().casefold(),
        birth=guest.birth_date,
        email=email,
        local=local,
        phone=guest.phone or None,
    )


# -- comparisons (pure) -------------------------------------------------------------------


@lru_cache(maxsize=1 << 18)  # a block's pairs meet the same names again and again
def first_name_level(a: str, b: str, raw_a: str = "", raw_b: str = "") -> str | None:  # noqa: PLR0911
    """None when either is missing."""
    if not a or not b:
        return None
    if raw_a and raw_a == raw_b:
        return "exact"
    if a == b:
        return "folded"
    if same_group(a, b) or any(same_group(x, y) for x in a.split() for y in b.split()):
        return "nickname"
    if (len(a) == 1 or len(b) == 1) and a[0] == b[0]:
        return "initial"
    if min(len(a), len(b)) >= 3 and JaroWinkler.similarity(a, b) >= SIMILAR:
        return "similar"
    return "different"


@lru_cache(maxsize=1 << 18)
def last_name_level(a: str, b: str, raw_a: str = "", raw_b: str = "") -> str | None:
    if not a or not b:
        return None
    if raw_a and raw_a == raw_b:
        return "exact"
    if a == b:
        return "folded"
    if min(len(a), len(b)) >= 3 and JaroWinkler.similarity(a, b) >= SIMILAR:
        return "similar"
    return "different"


def birth_date_level(a: date | None, b: date | None) -> str | None:
    if a is None or b is None:
        return None
    if a == b:
        return "exact"
    if a.year == b.year and a.month == b.day and a.day == b.month:
        return "day_month_swapped"
    # a slip of one digit, not of the year's decade (a father and son born 20 years apart)
    if a.year // 10 == b.year // 10:
        slips = (
            (a.year != b.year)
            + (a.month // 10 != b.month // 10)
            + (a.month % 10 != b.month % 10)
            + (a.day // 10 != b.day // 10)
            + (a.day % 10 != b.day % 10)
        )
        if slips == 1:
            return "one_digit_off"
    return "different"


def email_level(a: Prepared, b: Prepared) -> str | None:
    if a.email is None or b.email is None:
        return None
    if a.email == b.email:
        return "exact"
    if a.local is not None and a.local == b.local:
        return "same_local_part"
    return "different"


def phone_level(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return None
    return "exact" if a == b else "different"


# -- the model ------------------------------------------------------------------------------


@dataclass
class Model:
    """u-probabilities of a chain's guests and the counts of their values."""

    n: int
    u: dict[str, dict[str, float]]
    counts: dict[str, Mapping[Any, int]] = field(default_factory=dict)
    uninformative: int = UNINFORMATIVE
    weights: dict[tuple[str, str], float] = field(default_factory=dict)
    # names_bound per pair of names (the folded and raw first and last names of both): the
    # 1.53M candidate pairs of 1.19M guests hold 139k of them (a block shares a name)
    bounds: dict[tuple[str, ...], float] = field(default_factory=dict)
    # the weight of agreeing on a value so many profiles hold: (name, level, held) → weight
    held_weights: dict[tuple[str, str, int], float] = field(default_factory=dict)

    def share(self, field_name: str, value: Any) -> float:
        """u of agreeing on this exact value: the share of profiles holding it."""
        held = self.counts.get(field_name, _NONE).get(value, 1)
        return max(held, 1) / max(self.n, 1)

    def held_by(self, field_name: str, value: Any) -> int:
        return int(self.counts.get(field_name, _NONE).get(value, 0))

    def unequal_at_most(self, name: str) -> float:
        """The most a name that is not equal once folded can weigh (nickname, initial, …)."""
        cached = self.weights.get((name, "_unequal"))
        if cached is None:
            levels = [level for level in M[name] if level not in LEVELS_WITH_VALUE]
            cached = self.weights[(name, "_unequal")] = max(
                _weight(self, name, level) for level in levels
            )
        return cached

    @property
    def log_prior(self) -> float:
        """log2 of the prior odds that a random pair is one person."""
        pairs = max(self.n * (self.n - 1) / 2, 1)
        expected = max(PRIOR_SHARE * self.n, 1)
        return math.log2(expected / pairs)


def value_counts(prepared: list[Prepared]) -> dict[str, Mapping[Any, int]]:
    return {
        "first_name": Counter(p.first for p in prepared if p.first),
        "first_name_raw": Counter(p.first_raw for p in prepared if p.first_raw),
        "last_name": Counter(p.last for p in prepared if p.last),
        "last_name_raw": Counter(p.last_raw for p in prepared if p.last_raw),
        "birth_date": Counter(p.birth for p in prepared if p.birth),
        "email": Counter(p.email for p in prepared if p.email),
        "phone": Counter(p.phone for p in prepared if p.phone),
        "local": Counter(p.local for p in prepared if p.local),
    }


def estimate(
    prepared: list[Prepared],
    *,
    samples: int = 50_000,
    seed: int = 1,
    counts: dict[str, Mapping[Any, int]] | None = None,
) -> Model:
    """u of every level from random pairs of the chain's own guests (no labels needed);
    ``counts``: :func:`value_counts` of them, when already counted."""
    rng = random.Random(seed)  # noqa: S311 (a sample, not a secret)
    n = len(prepared)
    seen: dict[str, Counter[str]] = defaultdict(Counter)
    if n >= 2:
        for _ in range(samples):
            a, b = rng.randrange(n), rng.randrange(n - 1)
            b += b >= a  # two different guests
            x, y = prepared[a], prepared[b]
            for name, level in (
                ("first_name", first_name_level(x.first, y.first, x.first_raw, y.first_raw)),
                ("last_name", last_name_level(x.last, y.last, x.last_raw, y.last_raw)),
                ("birth_date", birth_date_level(x.birth, y.birth)),
                ("email", email_level(x, y)),
                ("phone", phone_level(x.phone, y.phone)),
            ):
                if level is not None:
                    seen[name][level] += 1
    u: dict[str, dict[str, float]] = {}
    for name, levels in M.items():
        total = sum(seen[name].values())
        u[name] = {level: (seen[name][level] + 0.5) / (total + 1) for level in levels}
    return Model(n=n, u=u, counts=counts if counts is not None else value_counts(prepared))


def _weight(model: Model, name: str, level: str, u_value: float | None = None) -> float:
    if u_value is None:
        cached = model.weights.get((name, level))
        if cached is None:
            cached = model.weights[(name, level)] = _sign(
                level, math.log2(M[name][level] / max(model.u[name][level], 1e-12))
            )
        return cached
    return _sign(level, math.log2(M[name][level] / max(u_value, 1e-12)))


def _sign(level: str, weight: float) -> float:
    """A difference is never evidence for, an agreement never against (odd u-estimates of a
    small or uniform chain cannot turn them around)."""
    return min(weight, 0.0) if level == "different" else max(weight, 0.0)


def _name_evidence(
    model: Model, first: tuple[str, str, str, str], last: tuple[str, str, str, str], swapped: bool
) -> list[Evidence]:
    """First-name rules on ``first`` (folded a, folded b, raw a, raw b), last-name rules on
    ``last``; the share of an exact value is taken from both fields when names are swapped."""
    found: list[Evidence] = []
    for name, (x, y, raw_x, raw_y), rule in (
        ("first_name", first, first_name_level),
        ("last_name", last, last_name_level),
    ):
        level = rule(x, y, raw_x, raw_y)
        if level is None:
            continue
        u = None
        if level in LEVELS_WITH_VALUE:
            key, value = ("_raw", raw_x) if level == "exact" else ("", x)
            shares = [model.share(name + key, value)]
            if swapped:
                other = "last_name" if name == "first_name" else "first_name"
                shares.append(model.share(other + key, value))
            u = max(shares)
        detail = x if level == "exact" else f"{x}/{y}"
        found.append(Evidence(name, level, _weight(model, name, level, u), detail))
    return found


def _names(model: Model, a: Prepared, b: Prepared) -> list[Evidence]:
    """Names as written, or first and last swapped on one side (whichever weighs more)."""
    best = _name_evidence(
        model,
        (a.first, b.first, a.first_raw, b.first_raw),
        (a.last, b.last, a.last_raw, b.last_raw),
        swapped=False,
    )
    if not (a.first and a.last and b.first and b.last) or all(e.level != "different" for e in best):
        return best  # swapped names would show as a difference
    best_weight = sum(e.weight for e in best)
    for first, last in (
        ((a.first, b.last, a.first_raw, b.last_raw), (a.last, b.first, a.last_raw, b.first_raw)),
        ((a.last, b.first, a.last_raw, b.first_raw), (a.first, b.last, a.first_raw, b.last_raw)),
    ):
        # both swapped names different: their weights and the penalty never beat the straight
        # names (each straight level weighs at least its field's "different")
        if first_name_level(*first) == "different" and last_name_level(*last) == "different":
            continue
        swapped = _name_evidence(model, first, last, swapped=True)
        weight = sum(e.weight for e in swapped) + SWAP_PENALTY
        if weight > best_weight:
            best = [*swapped, Evidence("names", "swapped", SWAP_PENALTY, "first/last")]
            best_weight = weight
    return best


def compare(model: Model, a: Prepared, b: Prepared) -> list[Evidence]:
    """The evidence of every field both profiles have, best orientation of the names."""
    return [*_names(model, a, b), *_others(model, a, b)]


def compare_reaching(
    model: Model, a: Prepared, b: Prepared, at_least: float
) -> list[Evidence] | None:
    """:func:`compare`, or None as soon as even the best names could not bring the weight up
    to ``at_least`` (most candidate pairs: a conflicting birth date, other contacts)."""
    names = (a.first, a.last, a.first_raw, a.last_raw, b.first, b.last, b.first_raw, b.last_raw)
    bound = model.bounds.get(names)
    if bound is None:
        bound = model.bounds[names] = names_bound(model, a, b)
    if _others_weight(model, a, b) + bound < at_least:
        return None
    return [*_names(model, a, b), *_others(model, a, b)]


def _held_weight(model: Model, name: str, level: str, held: int) -> float:
    """:func:`_weight` at the u of a value held by ``held`` profiles (:meth:`Model.share`),
    kept per count: a pass meets the same few counts a million times."""
    key = (name, level, held)
    weight = model.held_weights.get(key)
    if weight is None:
        weight = model.held_weights[key] = _weight(
            model, name, level, max(held, 1) / max(model.n, 1)
        )
    return weight


def _others_weight(model: Model, a: Prepared, b: Prepared) -> float:
    """The sum of the weights :func:`_others` finds, in its order, making no evidence."""
    total = 0.0
    level = birth_date_level(a.birth, b.birth)
    if level == "exact":
        if model.held_by("birth_date", a.birth) <= model.uninformative * 5:
            held = model.counts.get("birth_date", _NONE).get(a.birth, 1)
            total += _held_weight(model, "birth_date", level, held)
    elif level is not None:
        total += _weight(model, "birth_date", level)
    total += _contact_weight(model, "email", email_level(a, b), a.email, a.local)
    total += _contact_weight(model, "phone", phone_level(a.phone, b.phone), a.phone, None)
    return total


def _contact_weight(
    model: Model, name: str, level: str | None, value: str | None, local: str | None
) -> float:
    """The weight of :func:`_contact`'s evidence (0 when it finds none)."""
    if level is None:
        return 0.0
    if level == "exact":
        if model.held_by(name, value) > model.uninformative:
            return 0.0
        held = model.counts.get(name, _NONE).get(value, 1)
        return min(_held_weight(model, name, level, held), CONTACT_CAP)
    if level == "same_local_part":
        if model.held_by("local", local) > model.uninformative:
            return 0.0
        held = model.counts.get("local", _NONE).get(local, 1)
        return min(_held_weight(model, name, level, held), CONTACT_CAP / 2)
    return _weight(model, name, level)


def names_bound(model: Model, a: Prepared, b: Prepared) -> float:
    """At least what :func:`_names` can weigh (cheap: equalities and the levels' weights).

    A name equal once folded weighs at most its exact weight (from its share); any other at
    most the best of the levels that need no equality (nickname, initial, similar)."""
    best = -math.inf
    straight = (
        (a.first, b.first, a.first_raw, b.first_raw),
        (a.last, b.last, a.last_raw, b.last_raw),
    )
    swapped = (
        (a.first, b.last, a.first_raw, b.last_raw),
        (a.last, b.first, a.last_raw, b.first_raw),
    )
    # :func:`_names` tries both ways of reading the swapped names (which one is the first name)
    swapped_other = (swapped[1], swapped[0])
    for pairs, penalty in (
        (straight, 0.0),
        (swapped, SWAP_PENALTY),
        (swapped_other, SWAP_PENALTY),
    ):
        bound = penalty
        for name, (x, y, raw_x, raw_y) in zip(("first_name", "last_name"), pairs, strict=True):
            if not x or not y:
                continue
            if x != y:  # a level whose weight needs no value: exactly what it weighs
                rule = first_name_level if name == "first_name" else last_name_level
                bound += _weight(model, name, rule(x, y, raw_x, raw_y) or "different")
                continue
            folded = min(model.share(name, x), model.share(_OTHER[name], x))
            weight = _weight(model, name, "folded", folded)
            if raw_x == raw_y:
                raw = min(
                    model.share(name + "_raw", raw_x), model.share(_OTHER[name] + "_raw", raw_x)
                )
                weight = max(weight, _weight(model, name, "exact", raw))
            bound += weight
        best = max(best, bound)
    return best


_OTHER = {"first_name": "last_name", "last_name": "first_name"}


def _others(model: Model, a: Prepared, b: Prepared) -> list[Evidence]:
    evidence: list[Evidence] = []
    level = birth_date_level(a.birth, b.birth)
    if level is not None:
        held = model.held_by("birth_date", a.birth) if level == "exact" else 0
        if held > model.uninformative * 5:  # a placeholder date (1900-01-01 on 300 profiles)
            evidence.append(Evidence("birth_date", "uninformative", 0.0, f"shared by {held}"))
        else:
            u = model.share("birth_date", a.birth) if level == "exact" else None
            w = _weight(model, "birth_date", level, u)
            evidence.append(Evidence("birth_date", level, w, _dates(a.birth, b.birth)))
    evidence += _contact(model, "email", email_level(a, b), a.email, a.local)
    evidence += _contact(model, "phone", phone_level(a.phone, b.phone), a.phone, None)
    return evidence


def _dates(a: date | None, b: date | None) -> str:
    return str(a) if a == b else f"{a}/{b}"


def _contact(
    model: Model, name: str, level: str | None, value: str | None, local: str | None
) -> list[Evidence]:
    if level is None:
        return []
    if level == "exact":
        held = model.held_by(name, value)
        if held > model.uninformative:
            return [Evidence(name, "uninformative", 0.0, f"shared by {held} profiles")]
        w = min(_weight(model, name, level, model.share(name, value)), CONTACT_CAP)
        return [Evidence(name, level, w)]
    if level == "same_local_part":
        held = model.held_by("local", local)
        if held > model.uninformative:
            return [Evidence(name, "uninformative", 0.0, f"shared by {held} profiles")]
        w = min(_weight(model, name, level, model.share("local", local)), CONTACT_CAP / 2)
        return [Evidence(name, level, w, local or "")]
    return [Evidence(name, level, _weight(model, name, level))]


def probability(weight: float, log_prior: float) -> float:
    logit = weight + log_prior
    if logit > 60:
        return 1.0
    if logit < -60:
        return 0.0
    return 1.0 / (1.0 + math.pow(2.0, -logit))


# -- blocking -----------------------------------------------------------------------------


KINDS = {"e": "email", "l": "local", "p": "phone", "b": "birth_name", "n": "name"}
CAPS = {"e": UNINFORMATIVE, "l": UNINFORMATIVE, "p": UNINFORMATIVE}
CAPS.update(b=BIRTH_NAME_BLOCK_CAP, n=NAME_BLOCK_CAP)


def blocking_keys(p: Prepared) -> list[str]:
    """Keys a pair must share to be compared, each its kind's letter (:data:`KINDS`), a colon
    and a value; no key twice."""
    keys = []
    if p.email:
        keys.append("e:" + p.email)
    if p.local:
        keys.append("l:" + p.local)
    if p.phone:
        keys.append("p:" + p.phone)
    first, last = p.first, p.last
    if p.birth:
        born = p.birth
        day, month = (born.day, born.month) if born.day <= born.month else (born.month, born.day)
        stem = f"b:{born.year}-{day}-{month}-"
        if first:  # one name's first letters: swaps, a typo in the other name, a nickname
            keys.append(stem + first[:2])
        if last and (not first or last[:2] != first[:2]):
            keys.append(stem + last[:2])
    if first and last:
        keys.append(f"n:{last}|{first[0]}")
        if first != last or first[0] != last[0]:
            keys.append(f"n:{first}|{last[0]}")
    return keys


def cap(key: str, uninformative: int = UNINFORMATIVE) -> int:
    """How many profiles may share a key before it is too common to pair on."""
    kind = key[0]
    return uninformative if kind in "elp" else CAPS[kind]


@dataclass
class Blocking:
    pairs: set[tuple[int, int]]
    skipped: dict[str, int]  # kind → values too common to pair on


def candidate_pairs(
    prepared: list[Prepared],
    uninformative: int = UNINFORMATIVE,
    keys: Sequence[list[str]] | None = None,
) -> Blocking:
    """The pairs that share a blocking key not too common to pair on; ``keys``: each guest's
    :func:`blocking_keys`, when already made."""
    groups: dict[str, list[int] | int] = {}
    shared: list[str] = []  # keys held by two profiles or more
    for index, p in enumerate(prepared):
        for key in blocking_keys(p) if keys is None else keys[index]:
            held = groups.get(key)
            if held is None:
                groups[key] = index
            elif isinstance(held, int):
                groups[key] = [held, index]
                shared.append(key)
            else:
                held.append(index)
    pairs: set[tuple[int, int]] = set()
    skipped: Counter[str] = Counter()
    for key in shared:
        members = groups[key]
        if isinstance(members, int):  # never: a shared key holds a list
            continue
        if len(members) > cap(key, uninformative):
            skipped[KINDS[key[0]]] += 1
            continue
        if len(members) == 2:  # in the order read: the first is the lower
            pairs.add((members[0], members[1]))
            continue
        for i, x in enumerate(members):
            for y in members[i + 1 :]:
                pairs.add((x, y))
    return Blocking(pairs, dict(skipped))


def weight_for(threshold: float, model: Model) -> float:
    """The total weight a pair needs to reach ``threshold``."""
    if threshold <= 0:
        return -math.inf
    if threshold >= 1:
        return math.inf
    return math.log2(threshold / (1 - threshold)) - model.log_prior


def suggest(
    model: Model, a: Prepared, b: Prepared, threshold: float, at_least: float | None = None
) -> Suggestion | None:
    """The pair as a suggestion (lower id first) when it reaches ``threshold``."""
    if a.id > b.id:
        a, b = b, a
    if at_least is None:
        at_least = weight_for(threshold, model)
    evidence = compare_reaching(model, a, b, at_least)
    if evidence is None:
        return None
    weight = sum(e.weight for e in evidence)
    chance = probability(weight, model.log_prior)
    if chance < threshold:
        return None
    return Suggestion(a.id, b.id, weight, chance, tuple(evidence))


def match_prepared(
    prepared: list[Prepared], model: Model, threshold: float
) -> tuple[list[Suggestion], Blocking]:
    """Suggestions at or above ``threshold`` among prepared profiles, best first."""
    blocking = candidate_pairs(prepared, model.uninformative)
    found: list[Suggestion] = []
    # the weight below which no pair reaches the threshold
    at_least = weight_for(threshold, model)
    for x, y in blocking.pairs:
        found_pair = suggest(model, prepared[x], prepared[y], threshold, at_least)
        if found_pair is not None:
            found.append(found_pair)
    found.sort(key=lambda s: (-s.weight, s.a, s.b))
    return found, blocking


def match(
    guests: Iterable[Guest], *, threshold: float = 0.9, model: Model | None = None
) -> tuple[list[Suggestion], Blocking]:
    """Suggestions at or above ``threshold``, best first."""
    prepared = [prepare(g) for g in guests]
    return match_prepared(prepared, model or estimate(prepared), threshold)
