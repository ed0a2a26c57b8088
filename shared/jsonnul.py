"""Where a NUL character (U+0000) hides in parsed JSON (pure).

PostgreSQL can store U+0000 neither in text nor in jsonb, so the intake refuses bodies that
carry one and the Mews models refuse records that do; both name the place with :func:`find_nul`.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KEY_SHOWN = 40  # characters of an odd key shown in a JSON path


def find_nul(value: Any) -> str | None:
    """Where the first NUL is in parsed JSON (document order), as ``at $.a.b[0]`` or
    ``in a key of $.a``; None when there is none. Iterative: any depth orjson parses."""
    stack: list[tuple[Any, str]] = [(value, "$")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return f"at {path}"
        elif isinstance(node, dict):
            children = []
            for key, child in node.items():
                if "\x00" in key:
                    return f"in a key of {path}"
                children.append((child, _member(path, key)))
            stack.extend(reversed(children))
        elif isinstance(node, list):
            stack.extend((child, f"{path}[{i}]") for i, child in reversed(list(enumerate(node))))
    return None


def _member(path: str, key: str) -> str:
    if _IDENTIFIER.match(key):
        return f"{path}.{key}"
    shown = key if len(key) <= _KEY_SHOWN else key[:_KEY_SHOWN] + "…"
    return f"{path}[{orjson.dumps(shown).decode()}]"
