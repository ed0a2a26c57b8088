"""docs/RULES.md carries the rule catalogue exactly as the code declares it."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.quality.catalogue_doc import BEGIN, END, render_rules_table, with_table
from shared.quality.rules import CATALOGUE, FIELDS

RULES_MD = Path(__file__).resolve().parents[2] / "docs" / "RULES.md"


def test_docs_rules_md_holds_the_generated_table_unchanged() -> None:
    document = RULES_MD.read_text(encoding="utf-8")
    assert with_table(document) == document, (
        "docs/RULES.md differs from the catalogue: run"
        " `.venv/bin/python -m shared.quality.catalogue_doc docs/RULES.md`"
    )


def test_the_table_is_the_only_one_and_sits_between_the_markers() -> None:
    document = RULES_MD.read_text(encoding="utf-8")
    assert document.count(BEGIN) == document.count(END) == 1
    assert document.count("| kind |") == 1


def test_every_kind_parameter_and_field_of_the_catalogue_is_in_the_table() -> None:
    table = render_rules_table()
    named = {f"`{kind}`" for kind in CATALOGUE}
    named |= {f"`{p.name}`" for spec in CATALOGUE.values() for p in spec.params}
    named |= {f"`{field}`" for field in FIELDS}
    assert {name for name in named if name not in table} == set()


def test_a_document_without_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="has no"):
        with_table("# no markers here")
