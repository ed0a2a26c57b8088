"""Validation rules as data (pure).

A rule set is what an admin edits: per field, how much a complete value is worth (``required``
rules: the field's weight) and what makes a value wrong (validators, each with a weight: what a
failure costs). Rules are declarative — a kind, a field from a fixed catalogue, bounded
parameters — so no admin can inject SQL or a regex that stalls the database.

The score of a profile, 0–100:

    100 × max(0, Σ weight of present required fields − Σ cost of failing validators) / Σ weights

A validator applies only when its field (and, cross-field, the other field) has a value, and the
costs of all validators touching a field are scaled down, if needed, so together they never
exceed that field's weight. Hence filling a missing field never lowers a score, and the order
rules are listed in never matters.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# field → value type. The same catalogue exists in SQL (app.quality_field).
FIELDS: dict[str, str] = {
    "first_name": "text",
    "last_name": "text",
    "email": "text",
    "phone": "text",
    "birth_date": "date",
    "nationality_code": "text",
    "address": "bool",
    "identity_document": "bool",
    "language": "text",
    "title": "text",
    "sex": "text",
    "loyalty_code": "text",
    "company": "text",
}
Kind = Literal[
    "required",
    "email",
    "phone",
    "not_ota_email",
    "pattern",
    "allowed_values",
    "length",
    "date_range",
    "cross_field",
]
MAX_PATTERN = 200
# back-references and every (?...) construct; a quantified group that itself holds a quantifier
_UNSAFE_PATTERN = re.compile(r"\\[1-9]|\(\?|\([^)]*[+*?}][^)]*\)[+*?{]")


def _check_pattern(pattern: str) -> None:
    if len(pattern) > MAX_PATTERN:
        raise ValueError(f"a pattern is at most {MAX_PATTERN} characters")
    if _UNSAFE_PATTERN.search(pattern):
        raise ValueError("patterns may not use back-references, look-arounds or nested quantifiers")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid pattern: {exc}") from None


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str
    kind: Kind
    params: dict[str, Any] = Field(default_factory=dict)
    severity: Literal["info", "warning", "error"] = "warning"
    weight: int = Field(ge=0, le=100)

    @field_validator("field")
    @classmethod
    def _known_field(cls, value: str) -> str:
        if value not in FIELDS:
            raise ValueError(f"unknown field {value!r}; fields: {', '.join(sorted(FIELDS))}")
        return value

    @model_validator(mode="after")
    def _params(self) -> Rule:  # noqa: PLR0912 - one check per kind, read top to bottom
        p = self.params
        kind = self.kind
        allowed: dict[str, set[str]] = {
            "pattern": {"regex"},
            "allowed_values": {"values"},
            "length": {"min", "max"},
            "date_range": {"min_years_ago", "max_years_ago"},
            "cross_field": {"other", "op"},
        }
        extra = set(p) - allowed.get(kind, set())
        if extra:
            raise ValueError(f"{kind} takes no parameter(s) {', '.join(sorted(extra))}")
        if (kind == "email" and self.field != "email") or (
            kind == "not_ota_email" and self.field != "email"
        ):
            raise ValueError(f"{kind} applies to the email field")
        if kind == "phone" and self.field != "phone":
            raise ValueError("phone applies to the phone field")
        if kind == "pattern":
            if not isinstance(p.get("regex"), str):
                raise ValueError("pattern needs a regex")
            _check_pattern(p["regex"])
        if kind == "allowed_values":
            values = p.get("values")
            if (
                not isinstance(values, list)
                or not values
                or len(values) > 500
                or not all(isinstance(v, str) for v in values)
            ):
                raise ValueError("allowed_values needs 1..500 text values")
        if kind == "length":
            bounds = [p.get("min"), p.get("max")]
            if all(b is None for b in bounds) or not all(
                b is None or (isinstance(b, int) and 0 <= b <= 1000) for b in bounds
            ):
                raise ValueError("length needs min and/or max in 0..1000")
        if kind == "date_range":
            if FIELDS[self.field] != "date":
                raise ValueError("date_range applies to date fields")
            if not all(
                isinstance(p.get(k, 0), int) and 0 <= p.get(k, 0) <= 200
                for k in ("min_years_ago", "max_years_ago")
            ):
                raise ValueError("date_range bounds are whole years ago in 0..200")
        if kind == "cross_field":
            if p.get("other") not in FIELDS or p.get("other") == self.field:
                raise ValueError("cross_field needs another known field")
            if p.get("op") not in ("differs", "equals", "before", "after"):
                raise ValueError("cross_field op is one of differs, equals, before, after")
            if p["op"] in ("before", "after") and not (
                FIELDS[self.field] == FIELDS[p["other"]] == "date"
            ):
                raise ValueError("before/after compare two date fields")
        if kind in ("pattern", "allowed_values", "length") and FIELDS[self.field] != "text":
            raise ValueError(f"{kind} applies to text fields")
        return self

    def fields(self) -> tuple[str, ...]:
        if self.kind == "cross_field":
            return (self.field, str(self.params["other"]))
        return (self.field,)


def quantize(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def effective_costs(rules: list[Rule]) -> list[Decimal]:
    """Each rule's cost after scaling: validators touching a field never cost more, together,
    than the field's weight (a field without a weight makes its validators free: reported, not
    scored). Required rules keep their weight."""
    weights: dict[str, int] = {}
    for rule in rules:
        if rule.kind == "required":
            weights[rule.field] = weights.get(rule.field, 0) + rule.weight
    spent: dict[str, int] = {}
    for rule in rules:
        if rule.kind != "required":
            for f in rule.fields():
                spent[f] = spent.get(f, 0) + rule.weight
    costs = []
    for rule in rules:
        if rule.kind == "required":
            costs.append(Decimal(rule.weight))
            continue
        factor = min(
            (
                Decimal(1)
                if spent[f] <= weights.get(f, 0)
                else Decimal(weights.get(f, 0)) / Decimal(spent[f])
            )
            for f in rule.fields()
        )
        costs.append(quantize(Decimal(rule.weight) * factor))
    return costs


DEFAULT_RULES: list[Rule] = [
    Rule(field="last_name", kind="required", weight=10, severity="error"),
    Rule(field="first_name", kind="required", weight=10, severity="warning"),
    Rule(field="email", kind="required", weight=15, severity="warning"),
    Rule(field="email", kind="email", weight=10, severity="error"),
    Rule(field="email", kind="not_ota_email", weight=5, severity="info"),
    Rule(field="phone", kind="required", weight=15, severity="warning"),
    Rule(field="phone", kind="phone", weight=10, severity="error"),
    Rule(field="birth_date", kind="required", weight=10, severity="info"),
    Rule(
        field="birth_date",
        kind="date_range",
        params={"min_years_ago": 14, "max_years_ago": 110},
        weight=5,
        severity="warning",
    ),
    Rule(field="nationality_code", kind="required", weight=10, severity="warning"),
    Rule(field="address", kind="required", weight=10, severity="info"),
    Rule(field="identity_document", kind="required", weight=5, severity="info"),
    Rule(field="language", kind="required", weight=5, severity="info"),
    Rule(
        field="first_name",
        kind="cross_field",
        params={"other": "last_name", "op": "differs"},
        weight=3,
        severity="info",
    ),
]
