"""Every CLI test keeps the embedded database's home (and anything else a command writes by
default) inside its own temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def guesthub_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "guesthub-home"
    monkeypatch.setenv("GUESTHUB_HOME", str(home))
    return home
