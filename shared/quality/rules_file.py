"""Rules as code: one enterprise's rule set as a YAML file (pure: text in, text out).

    # what this file is (comments are free)
    enterprise: 6f1a3b5e-0000-4000-8000-0000000e0001
    note: stricter phones            # optional: the note of the draft it becomes
    duplicates: {threshold: 0.92}    # optional: the duplicate threshold it sets when enabled
    rules:
      - field: phone
        kind: required
        severity: warning
        weight: 15
      - field: birth_date
        kind: date_range
        params: {min_years_ago: 14, max_years_ago: 110}
        severity: warning
        weight: 5

:func:`load` reads a file and refuses it with every problem found, each naming the line, the
rule and the key: unknown or repeated keys (top level and per rule), then what
:func:`entry_problem` says about each rule — the words ``app.quality_rule_entry_problem`` uses
where the same list is written (``public.quality_rules_replace``), its parameters judged by
:func:`shared.quality.rules.rule_problem`; the set as a whole must keep the bounds of
:mod:`shared.quality.cost` (``app.quality_rule_set_problem``). :func:`dump` writes what :func:`load` reads back
unchanged, so ``export`` then ``apply`` round-trips exactly.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, get_args

import yaml

from shared.quality.cost import measure, set_problem
from shared.quality.rules import Rule, rule_problem

TOP_KEYS = ("enterprise", "note", "duplicates", "rules")
DUPLICATES_KEYS = ("threshold",)
# the bounds public.quality_rule_set_duplicate_threshold and public.duplicate_settings hold
THRESHOLD_MIN, THRESHOLD_BELOW = 0.5, 1.0
ENTRY_KEYS = ("field", "kind", "params", "severity", "weight")
REQUIRED_ENTRY_KEYS = ("field", "kind", "weight")
SEVERITIES: tuple[str, ...] = get_args(Rule.model_fields["severity"].annotation)
NOT_A_MAPPING = "a rule must be a mapping of field, kind, params, severity, weight"


class RulesFileError(ValueError):
    """A rules file that cannot be used; ``problems`` lists each, one line apiece."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class RulesFile:
    """One enterprise's rules, in their order."""

    enterprise_id: str
    rules: tuple[Rule, ...]
    note: str | None = None
    duplicate_threshold: float | None = None  # set as the enterprise's when the set is enabled


def _text_or_unknown(value: Any) -> str:
    return value if isinstance(value, str) else "?"


def _whole(value: Any, upper: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= upper


def entry_problem(entry: Any) -> str | None:  # noqa: PLR0911 — one return per refusal
    """What is wrong with one rule entry, in the words of app.quality_rule_entry_problem."""
    if not isinstance(entry, Mapping):
        return NOT_A_MAPPING
    where = (
        f"{_text_or_unknown(entry.get('kind'))} rule on {_text_or_unknown(entry.get('field'))}: "
    )
    for key in sorted(map(str, entry)):
        if key not in ENTRY_KEYS:
            return where + f"unknown key {key} (keys: {', '.join(ENTRY_KEYS)})"
    for key in REQUIRED_ENTRY_KEYS:
        if entry.get(key) is None:
            return where + f"key {key} is required"
    if not isinstance(entry["field"], str) or not isinstance(entry["kind"], str):
        return where + "field and kind are texts"
    if not _whole(entry["weight"], 100):
        return where + "weight must be a whole number from 0 to 100"
    if "severity" in entry and entry["severity"] not in SEVERITIES:
        return where + f"severity is one of {', '.join(SEVERITIES)}"
    return rule_problem(entry["field"], entry["kind"], entry.get("params", {}))


def rule_of(entry: Mapping[str, Any]) -> Rule:
    """The rule an entry that has no problem describes."""
    return Rule(
        field=entry["field"],
        kind=entry["kind"],
        params=dict(entry.get("params") or {}),
        severity=entry.get("severity", "warning"),
        weight=entry["weight"],
    )


def entry_of(rule: Rule) -> dict[str, Any]:
    """A rule as an entry of ``public.quality_rules_replace`` (and of the file)."""
    return {
        "field": rule.field,
        "kind": rule.kind,
        "params": dict(rule.params),
        "severity": rule.severity,
        "weight": rule.weight,
    }


# --- reading ---------------------------------------------------------------------------------


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


class _Reader:
    """Walks the YAML node tree, so every problem can name its line."""

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self._found: list[tuple[int, str]] = []
        self._loader = yaml.SafeLoader(text)

    @property
    def problems(self) -> list[str]:
        """Every problem so far, in line order."""
        return [
            f"{self.source}:{line}: {message}"
            for line, message in sorted(self._found, key=lambda found: found[0])
        ]

    def close(self) -> None:
        self._loader.dispose()

    def refuse(self, node: yaml.Node | int, message: str) -> None:
        self._found.append((node if isinstance(node, int) else _line(node), message))

    def refuse_yaml(self, exc: yaml.YAMLError) -> None:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = int(mark.line) + 1 if mark is not None else 1
        self.refuse(line, f"not YAML: {getattr(exc, 'problem', None) or exc}")

    def root(self) -> yaml.Node | None:
        return self._loader.get_single_node()

    def value(self, node: yaml.Node) -> Any:
        return self._loader.construct_object(node, deep=True)

    def mapping(
        self, node: yaml.Node, where: str, allowed: tuple[str, ...] | None = None
    ) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        """Key → (key node, value node), or None if ``node`` is no mapping. Refuses repeated
        keys, and keys not ``allowed`` (when given)."""
        if not isinstance(node, yaml.MappingNode):
            return None
        found: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = str(self.value(key_node))
            if key in found:
                self.refuse(key_node, f"{where}repeated key {key}")
            elif allowed is not None and key not in allowed:
                self.refuse(key_node, f"{where}unknown key {key} (keys: {', '.join(allowed)})")
            found[key] = (key_node, value_node)
        return found


def _subject(detail: str) -> str | None:
    """The key a rule's problem is about."""
    for key in ENTRY_KEYS:
        if detail.startswith((f"key {key} ", f"{key} ", f"unknown {key} ")):
            return key
    if detail.startswith("unknown key "):
        return detail.split()[2]
    if " applies to " in detail:
        return "field"
    return "params"  # the rest of rule_problem's words are about parameters


def _problem_line(problem: str, keys: dict[str, tuple[yaml.Node, yaml.Node]], rule: int) -> int:
    """The line a rule's problem is about: the key it names, else the rule's first line."""
    subject = _subject(problem.split(": ", 1)[-1])
    if subject in keys:
        return _line(keys[subject][0])
    return rule


def _read_rules(reader: _Reader, node: yaml.Node) -> list[Rule]:
    if not isinstance(node, yaml.SequenceNode):
        reader.refuse(node, "rules must be a list of rules")
        return []
    rules: list[Rule] = []
    for index, rule_node in enumerate(node.value, start=1):
        keys = reader.mapping(rule_node, f"rule {index}: ")
        if keys is None:
            reader.refuse(rule_node, f"rule {index}: {NOT_A_MAPPING}")
            continue
        entry = {key: reader.value(value_node) for key, (_, value_node) in keys.items()}
        problem = entry_problem(entry)
        if problem is not None:
            line = _problem_line(problem, keys, _line(rule_node))
            reader.refuse(line, f"rule {index}: {problem}")
            continue
        rules.append(rule_of(entry))
    return rules


def _read_enterprise(reader: _Reader, node: yaml.Node) -> str:
    value = reader.value(node)
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        reader.refuse(node, f"enterprise must be an enterprise id (a UUID), not {value!r}")
        return ""


def _read_duplicates(reader: _Reader, node: yaml.Node) -> float | None:
    keys = reader.mapping(node, "duplicates: ", DUPLICATES_KEYS)
    if keys is None:
        reader.refuse(node, "duplicates must be a mapping (threshold)")
        return None
    if "threshold" not in keys:
        reader.refuse(node, "duplicates: key threshold is required")
        return None
    value_node = keys["threshold"][1]
    value = reader.value(value_node)
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not THRESHOLD_MIN <= value < THRESHOLD_BELOW:
        reader.refuse(
            value_node,
            f"duplicates: threshold is a probability at least {THRESHOLD_MIN:g} and below"
            f" {THRESHOLD_BELOW:g}, not {value!r}",
        )
        return None
    return float(value)


def _read(reader: _Reader) -> RulesFile | None:
    root = reader.root()
    if root is None:
        if not reader.problems:
            reader.refuse(1, "empty file: expected enterprise, note and rules")
        return None
    top = reader.mapping(root, "top level: ", TOP_KEYS)
    if top is None:
        reader.refuse(root, "a rules file is a mapping of enterprise, note, duplicates, rules")
        return None
    for key in ("enterprise", "rules"):
        if key not in top:
            reader.refuse(root, f"key {key} is required")
    enterprise = _read_enterprise(reader, top["enterprise"][1]) if "enterprise" in top else ""
    rules = _read_rules(reader, top["rules"][1]) if "rules" in top else []
    if not reader.problems:
        problem = set_problem(measure((r.field, r.kind, r.params) for r in rules))
        if problem is not None:
            reader.refuse(top["rules"][0], f"rules: {problem}")
    note = reader.value(top["note"][1]) if "note" in top else None
    if note is not None and not isinstance(note, str):
        reader.refuse(top["note"][1], "note must be a text")
    threshold = _read_duplicates(reader, top["duplicates"][1]) if "duplicates" in top else None
    return RulesFile(enterprise, tuple(rules), note if isinstance(note, str) else None, threshold)


def _read_safely(text: str, source: str) -> tuple[RulesFile | None, list[str]]:
    reader = _Reader(text, source)
    loaded = None
    try:
        loaded = _read(reader)
    except yaml.YAMLError as exc:
        reader.refuse_yaml(exc)
    finally:
        reader.close()
    return loaded, reader.problems


def problems(text: str, source: str = "<rules>") -> list[str]:
    """Every problem of a rules file, each ``source:line: ...``; empty when it is usable."""
    return _read_safely(text, source)[1]


def load(text: str, source: str = "<rules>") -> RulesFile:
    """The rules of a file; :class:`RulesFileError` with every problem when it has any."""
    loaded, found = _read_safely(text, source)
    if found or loaded is None:
        raise RulesFileError(found or [f"{source}:1: nothing to read"])
    return loaded


# --- writing ---------------------------------------------------------------------------------


class _Flow(dict[str, Any]):
    """A mapping written on one line (a rule's parameters)."""


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        """Indent the rules under ``rules:`` (PyYAML writes block lists flush by default)."""
        super().increase_indent(flow, False)


def _represent_flow(dumper: yaml.SafeDumper, data: _Flow) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=True)


# line breaks YAML knows beyond \n and \r: a plain or single-quoted text would fold them away
_UNICODE_BREAKS = ("\x85", "\u2028", "\u2029")


def _represent_text(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = '"' if any(c in data for c in _UNICODE_BREAKS) else None  # escaped: \N, \L, \P
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(_Flow, _represent_flow)
_Dumper.add_representer(str, _represent_text)


def dump(rules_file: RulesFile, *, header: list[str] | None = None) -> str:
    """The file for these rules (``header`` lines become comments); :func:`load` reads it back
    to the same :class:`RulesFile`."""
    entries = []
    for rule in rules_file.rules:
        entry: dict[str, Any] = {"field": rule.field, "kind": rule.kind}
        if rule.params:
            entry["params"] = _Flow(sorted(rule.params.items()))
        entry.update(severity=rule.severity, weight=rule.weight)
        entries.append(entry)
    document: dict[str, Any] = {"enterprise": rules_file.enterprise_id}
    if rules_file.note is not None:
        document["note"] = rules_file.note
    if rules_file.duplicate_threshold is not None:
        document["duplicates"] = _Flow(threshold=round(rules_file.duplicate_threshold, 6))
    document["rules"] = entries
    body = yaml.dump(
        document,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )
    comments = "".join(f"# {line}\n" for line in header or [])
    return comments + body
