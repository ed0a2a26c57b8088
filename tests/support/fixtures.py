"""The Mews fixtures: exact request/response shapes from the Connector API documentation.

A copy lives in tests/fixtures/mews so the suite runs from a clean clone alone; when the team's
reference folder (../shared/mews beside the repository) is present, a test checks the copy is
identical.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mews"
REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "mews"


def load(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def request_body(name: str) -> dict[str, Any]:
    """A request fixture without the tokens and client name (the client adds those)."""
    body = dict(load(name))
    for key in ("ClientToken", "AccessToken", "Client"):
        body.pop(key, None)
    return body
