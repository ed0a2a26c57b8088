"""The packages import downwards only: the Mews client and the database adapters know nothing of
the sync, the intake, the connections or the CLI; the sync engine knows nothing of the
connections or the CLI; nothing in ``shared`` imports the Cloud Functions (``functions``), which
are entry points above it. Every import counts, also one inside a function or for typing only."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package → the packages it must not import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "shared.mews": (
        "shared.sync",
        "shared.intake",
        "shared.connections",
        "shared.cli",
        "shared.listener",
        "shared.quality",
        "shared.simulator",
    ),
    "shared.db": (
        "shared.mews",
        "shared.sync",
        "shared.intake",
        "shared.connections",
        "shared.cli",
        "shared.listener",
    ),
    "shared.sync": ("shared.connections", "shared.cli", "shared.listener"),
    "shared.intake": ("shared.sync", "shared.connections", "shared.cli", "shared.listener"),
    "shared": ("functions",),
}
# what a package may import all the same: the entity registry, which imports only the Mews layer
ALLOWED: dict[str, tuple[str, ...]] = {"shared.intake": ("shared.sync.entities",)}


def imported(path: Path, root: Path) -> Iterator[tuple[int, str]]:
    """Every module ``path`` imports, with its line (relative imports made absolute)."""
    package = ".".join(path.relative_to(root).parent.parts)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield node.lineno, base


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def violations(
    package: str, forbidden: tuple[str, ...], root: Path = ROOT, allowed: tuple[str, ...] = ()
) -> list[str]:
    folder = root.joinpath(*package.split("."))
    return [
        f"{path.relative_to(root)}:{line} imports {name}"
        for path in sorted(folder.rglob("*.py"))
        for line, name in imported(path, root)
        if any(within(name, f) for f in forbidden) and not any(within(name, a) for a in allowed)
    ]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_none_of_the_layers_above_it(package: str) -> None:
    assert violations(package, FORBIDDEN[package], allowed=ALLOWED.get(package, ())) == []


def test_the_entity_registry_imports_only_the_mews_layer() -> None:
    """What the intake may read of the sync (the registry) brings nothing of the sync with it."""
    path = ROOT / "shared" / "sync" / "entities.py"
    ours = [name for _, name in imported(path, ROOT) if within(name, "shared")]
    assert ours
    assert [name for name in ours if not within(name, "shared.mews")] == []


def test_the_check_sees_every_kind_of_import(tmp_path: Path) -> None:
    """A plain, a from-, a relative and a function-local import are all seen (the check can
    fail)."""
    probe = tmp_path / "shared" / "mews" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text(
        "import shared.sync.engine\n"
        "from shared.intake import events\n"
        "from ..cli import app\n"
        "def later() -> None:\n"
        "    from functions import runtime\n"
    )
    found = violations("shared.mews", (*FORBIDDEN["shared.mews"], "functions"), tmp_path)
    assert found == [
        "shared/mews/probe.py:1 imports shared.sync.engine",
        "shared/mews/probe.py:2 imports shared.intake",
        "shared/mews/probe.py:3 imports shared.cli",
        "shared/mews/probe.py:5 imports functions",
    ]
