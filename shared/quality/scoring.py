"""The completeness score of one profile (pure). The set-based SQL scorer
(``app.quality_score_sql``) implements the same rules; a test keeps them in agreement."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from shared.quality.rules import FIELDS, Rule, effective_costs

LABELS = {"required": "Missing", "not_ota_email": "Weak"}


@dataclass(frozen=True)
class Reason:
    field: str
    kind: str  # missing | invalid | weak
    rule: str
    cost: Decimal
    severity: str

    @property
    def message(self) -> str:
        label = (
            "Missing" if self.kind == "missing" else "Weak" if self.kind == "weak" else "Invalid"
        )
        return f"{label}: {self.field.replace('_', ' ')} (−{_fmt(self.cost)})"


@dataclass(frozen=True)
class Score:
    value: int
    reasons: tuple[Reason, ...]


def _fmt(cost: Decimal) -> str:
    return f"{cost.normalize():f}"


def present(profile: dict[str, Any], field: str) -> bool:
    value = profile.get(field)
    if FIELDS[field] == "bool":
        return bool(value)
    if isinstance(value, str):
        return value.strip() != ""
    return value is not None


def _years_ago(today: date, years: int) -> date:
    try:
        return today.replace(year=today.year - years)
    except ValueError:  # 29 February
        return today.replace(year=today.year - years, day=28)


def fails(rule: Rule, profile: dict[str, Any], today: date) -> bool:  # noqa: PLR0911 - one verdict per kind
    """Does a present value break the rule? (Called only when the rule applies.)"""
    value = profile.get(rule.field)
    p = rule.params
    if rule.kind == "email":
        return profile.get("email_valid") is False
    if rule.kind == "phone":
        return profile.get("phone_valid") is False
    if rule.kind == "not_ota_email":
        return bool(profile.get("email_ota"))
    if rule.kind == "pattern":
        import regex  # bounded evaluation: a timeout, whatever the pattern

        return regex.search(p["regex"], str(value)[:255], timeout=0.05) is None
    if rule.kind == "allowed_values":
        return str(value) not in p["values"]
    if rule.kind == "length":
        n = len(str(value))
        return (p.get("min") is not None and n < p["min"]) or (
            p.get("max") is not None and n > p["max"]
        )
    if rule.kind == "date_range":
        oldest = _years_ago(today, p.get("max_years_ago", 200))
        youngest = _years_ago(today, p.get("min_years_ago", 0))
        return not oldest <= value <= youngest  # type: ignore[operator]
    if rule.kind == "cross_field":
        other = profile.get(p["other"])
        op = p["op"]
        if op in ("differs", "equals"):
            same = str(value).strip().lower() == str(other).strip().lower()
            return same if op == "differs" else not same
        return not (value < other) if op == "before" else not (value > other)  # type: ignore[operator]
    return False


def score(profile: dict[str, Any], rules: list[Rule], today: date) -> Score:
    costs = effective_costs(rules)
    total = sum((Decimal(r.weight) for r in rules if r.kind == "required"), Decimal(0))
    credit = Decimal(0)
    penalty = Decimal(0)
    reasons = []
    for rule, cost in zip(rules, costs, strict=True):
        if rule.kind == "required":
            if present(profile, rule.field):
                credit += cost
            else:
                reasons.append(Reason(rule.field, "missing", rule.kind, cost, rule.severity))
            continue
        if all(present(profile, f) for f in rule.fields()) and fails(rule, profile, today):
            penalty += cost
            kind = "weak" if rule.kind == "not_ota_email" else "invalid"
            reasons.append(Reason(rule.field, kind, rule.kind, cost, rule.severity))
    if total == 0:
        return Score(100, tuple(reasons))
    value = (Decimal(100) * max(Decimal(0), credit - penalty) / total).quantize(
        Decimal(1), rounding=ROUND_HALF_UP
    )
    return Score(int(value), tuple(sorted(reasons, key=lambda r: (-r.cost, r.field, r.rule))))
