"""`functions/main.py` as the Cloud Functions runtime uses it: importing it runs the preflight
and imports no function; asking for one imports that one only."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import functions_framework
import pytest

from functions import runtime
from tests.support.fixtures import FIXTURES

ROOT = Path(__file__).resolve().parents[2]
SECRET = "entry-point-secret"


def modules_after(code: str) -> list[str]:
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))\n"
    answer = subprocess.run(  # noqa: S603 - our own executables
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return [m for m in json.loads(answer.stdout) if m.startswith(("functions.", "shared."))]


def test_importing_main_imports_no_function() -> None:
    loaded = modules_after("import functions.main")
    assert [m for m in loaded if m.removeprefix("functions.") in FUNCTION_NAMES] == []
    assert not any(m.startswith(("shared.quality", "shared.sync", "shared.intake")) for m in loaded)


def test_asking_for_one_function_imports_its_module_only() -> None:
    loaded = modules_after("import functions.main\nfunctions.main.mews_webhook")
    assert [m for m in loaded if m.removeprefix("functions.") in FUNCTION_NAMES] == [
        "functions.mews_webhook"
    ]
    assert not any(m.startswith("shared.quality") for m in loaded)


def test_an_unknown_name_is_an_attribute_error() -> None:
    import functions.main

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = functions.main.nope


@pytest.fixture
def webhook_runtime(database_url: str) -> Iterator[str]:
    runtime.reset(database_url=database_url, webhook_secret=SECRET)
    yield database_url
    runtime.reset()


def test_functions_framework_serves_a_function_through_main(webhook_runtime: str) -> None:
    app = functions_framework.create_app(
        target="mews_webhook", source=str(ROOT / "functions/main.py")
    )
    body = (FIXTURES / "webhook_general.json").read_bytes()
    answer = app.test_client().post(f"/?Token={SECRET}", data=body, content_type="application/json")
    assert answer.status_code == 202, answer.get_json()


FUNCTION_NAMES = {
    "mews_webhook",
    "poll_changes",
    "process_events",
    "purge_inbox",
    "push_changes",
    "reconcile",
    "score_profiles",
}
