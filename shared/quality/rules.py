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

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.quality.patterns import MAX_PATTERN_LENGTH, pattern_problem

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
KINDS: tuple[str, ...] = (
    "allowed_values",
    "cross_field",
    "date_range",
    "email",
    "length",
    "not_ota_email",
    "pattern",
    "phone",
    "required",
)
CROSS_FIELD_OPS = ("differs", "equals", "before", "after")


@dataclass(frozen=True)
class Param:
    """One parameter of a rule kind: its JSON type, whether it must be given, its bounds."""

    name: str
    type: str  # text | texts | whole number | field | choice
    required: bool
    meaning: str
    upper: int | None = None


@dataclass(frozen=True)
class KindSpec:
    """What a rule kind checks, the fields it applies to, and its parameters."""

    applies_to: str  # a field name, or a field type: text | date | any
    meaning: str
    params: tuple[Param, ...] = ()
    # at least one of these must be given (length, date_range)
    one_of: tuple[str, ...] = ()


# The catalogue of rule kinds. app.quality_rule_problem (SQL) checks the same, word for word.
CATALOGUE: dict[str, KindSpec] = {
    "required": KindSpec(
        "any", "the field has a value; its weight is what a complete value is worth"
    ),
    "email": KindSpec("email", "the e-mail address is deliverable in form (email-validator)"),
    "not_ota_email": KindSpec("email", "the e-mail is not an OTA relay address (Mews flags these)"),
    "phone": KindSpec("phone", "the phone number is valid for its country (phonenumbers)"),
    "pattern": KindSpec(
        "text",
        "the value matches a regular expression (a safe subset: see shared/quality/patterns.py)",
        (Param("regex", "text", True, f"the expression, at most {MAX_PATTERN_LENGTH} characters"),),
    ),
    "allowed_values": KindSpec(
        "text",
        "the value is one of a list",
        (Param("values", "texts", True, "1 to 200 texts of 1 to 100 characters", 200),),
    ),
    "length": KindSpec(
        "text",
        "the value's length in characters is within bounds",
        (
            Param("min", "whole number", False, "shortest allowed length, 0 to 1000", 1000),
            Param("max", "whole number", False, "longest allowed length, 0 to 1000", 1000),
        ),
        one_of=("min", "max"),
    ),
    "date_range": KindSpec(
        "date",
        "the date lies between so many whole years ago",
        (
            Param(
                "min_years_ago",
                "whole number",
                False,
                "at least this many years ago, 0 to 200",
                200,
            ),
            Param(
                "max_years_ago", "whole number", False, "at most this many years ago, 0 to 200", 200
            ),
        ),
        one_of=("min_years_ago", "max_years_ago"),
    ),
    "cross_field": KindSpec(
        "any",
        "the value compared with another field's (differs, equals; before, after for dates)",
        (
            Param("other", "field", True, "the other field"),
            Param("op", "choice", True, "differs, equals, before or after"),
        ),
    ),
}


def _whole(value: Any, upper: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= upper


def rule_problem(field: str, kind: str, params: Any) -> str | None:  # noqa: PLR0911, PLR0912
    """What is wrong with a rule, in the words app.quality_rule_problem uses; None if nothing."""
    where = f"{kind} rule on {field}: "
    spec = CATALOGUE.get(kind)
    if spec is None:
        return where + f"unknown kind (kinds: {', '.join(KINDS)})"
    field_type = FIELDS.get(field)
    if field_type is None:
        return where + f"unknown field {field}"
    if not isinstance(params, dict):
        return where + "params must be an object"
    allowed = [p.name for p in spec.params]
    for key in sorted(params):
        if key not in allowed:
            hint = f"allowed: {', '.join(allowed)}" if allowed else f"{kind} takes no parameters"
            return where + f"unknown parameter {key} ({hint})"
    for param in spec.params:
        if param.required and param.name not in params:
            return where + f"parameter {param.name} is required"
    if spec.applies_to in ("email", "phone") and field != spec.applies_to:
        return where + f"{kind} applies to the {spec.applies_to} field only"
    if spec.applies_to in ("text", "date") and field_type != spec.applies_to:
        return where + f"{kind} applies to {spec.applies_to} fields only"
    if kind == "pattern":
        regex = params["regex"]
        if not isinstance(regex, str):
            return where + "parameter regex must be a string"
        problem = pattern_problem(regex)
        return None if problem is None else where + f"parameter regex: {problem}"
    if kind == "allowed_values":
        values = params["values"]
        if not isinstance(values, list) or not 1 <= len(values) <= 200:
            return where + "parameter values must be a list of 1 to 200 texts"
        if not all(isinstance(v, str) and 1 <= len(v) <= 100 for v in values):
            return where + "parameter values: each value is a text of 1 to 100 characters"
        return None
    if spec.one_of:
        low, high = spec.one_of
        if low not in params and high not in params:
            return where + f"parameter {low} or {high} is required"
        for param in spec.params:
            if param.name in params and not _whole(params[param.name], param.upper or 0):
                return (
                    where + f"parameter {param.name} must be a whole number from 0 to {param.upper}"
                )
        if low in params and high in params and params[low] > params[high]:
            return where + f"{low} ({params[low]}) is greater than {high} ({params[high]})"
        return None
    if kind == "cross_field":
        other, op = params["other"], params["op"]
        if not isinstance(other, str) or other not in FIELDS:
            return where + "parameter other must name a known field"
        if other == field:
            return where + "parameter other must name another field"
        if not isinstance(op, str) or op not in CROSS_FIELD_OPS:
            return where + "parameter op is one of differs, equals, before, after"
        if op in ("before", "after") and not (field_type == FIELDS[other] == "date"):
            return where + "before and after compare two date fields"
    return None


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str
    kind: Kind
    params: dict[str, Any] = Field(default_factory=dict)
    severity: Literal["info", "warning", "error"] = "warning"
    weight: int = Field(ge=0, le=100)

    @model_validator(mode="after")
    def _valid(self) -> Rule:
        problem = rule_problem(self.field, self.kind, self.params)
        if problem is not None:
            raise ValueError(problem)
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
