"""The repository is self-contained: every reference to docs/MEWS.md names a section that exists,
and no file points to notes kept outside the repository."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEWS_MD = ROOT / "docs" / "MEWS.md"
FOLDERS = ("shared", "functions", "tests", "bench", "deploy", "supabase", "docs")
ROOT_FILES = ("README.md", "Dockerfile", "Makefile", "pyproject.toml", "scheduler.yaml")
SUFFIXES = frozenset({".py", ".sql", ".md", ".yaml", ".toml", ".json", ".txt", ""})
# written in pieces so this file does not match itself
OUTSIDE = tuple(
    "".join(parts)
    for parts in (
        ("CONNECTOR", "-API"),
        ("DESIGN", ".md"),
        ("STYLE", ".md"),
        ("../", "shared"),
        ("shared/mews/", "fixtures"),
        ("/work/", "shared"),
    )
)
CITATION = re.compile(r"MEWS\.md(#[a-z0-9-]+(?:,\s*#[a-z0-9-]+)*)")


def text_files() -> Iterator[Path]:
    for name in ROOT_FILES:
        yield ROOT / name
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and path.suffix in SUFFIXES and "__pycache__" not in path.parts:
                yield path


def anchors() -> set[str]:
    return set(re.findall(r'<a id="([a-z0-9-]+)"></a>', MEWS_MD.read_text(encoding="utf-8")))


def test_every_citation_of_the_mews_notes_names_a_section() -> None:
    known = anchors()
    assert {"errors", "item-caps", "paging", "window-limits", "websocket"} <= known
    cited: dict[str, set[str]] = {}
    for path in text_files():
        for match in CITATION.finditer(path.read_text(encoding="utf-8")):
            for anchor in re.findall(r"#([a-z0-9-]+)", match[1]):
                cited.setdefault(anchor, set()).add(str(path.relative_to(ROOT)))
    for anchor in re.findall(r"\]\(#([a-z0-9-]+)\)", MEWS_MD.read_text(encoding="utf-8")):
        cited.setdefault(anchor, set()).add("docs/MEWS.md")
    assert len(cited) >= 10
    unknown = {anchor: sorted(files) for anchor, files in cited.items() if anchor not in known}
    assert unknown == {}


def test_nothing_points_outside_the_repository() -> None:
    found = [
        f"{path.relative_to(ROOT)}: {needle}"
        for path in text_files()
        for needle in OUTSIDE
        if needle in path.read_text(encoding="utf-8")
    ]
    assert found == []
