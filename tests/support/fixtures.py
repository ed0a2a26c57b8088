"""The Mews fixtures in tests/fixtures/mews: request and response bodies in the Connector API's
documented shapes, every value invented (docs/MEWS.md#fixtures)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mews"


def load(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def request_body(name: str) -> dict[str, Any]:
    """A request fixture without the tokens and client name (the client adds those)."""
    body = dict(load(name))
    for key in ("ClientToken", "AccessToken", "Client"):
        body.pop(key, None)
    return body
