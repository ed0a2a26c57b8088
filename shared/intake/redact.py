"""What of a received body may be stored: secrets removed, NUL replaced (pure, no I/O).

Integration Webhooks carry the connection's AccessToken (IntegrationCreated ``Data.AccessToken``)
or its regenerated key (IntegrationApiKeyCreated ``Data.ApiKey``). The token itself is only
ever kept encrypted (``connections``); the inbox keeps the body with every value under a secret
key (case-sensitive Mews names, anywhere in the JSON) replaced by ``"[redacted]"``. The database
does the same again for every writer (``app.redact_body``); this is the first line.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

SECRET_KEYS = frozenset({"AccessToken", "ApiKey", "ClientToken"})
REDACTED = "[redacted]"
# what is stored instead of a body whose secret could not be removed any other way
WITHHELD = '{"withheld": "the body carried a secret that could not be redacted"}'

# a secret key's value in text that is not JSON: a string (possibly escaped, possibly cut off
# by the end of the text) or a bare word up to the next delimiter
_SECRET_IN_TEXT = re.compile(
    r'("(?:' + "|".join(sorted(SECRET_KEYS)) + r')"\s*:\s*)'
    r'(?:"(?:[^"\\]|\\.)*(?:"|\\?\Z)|[^\s,}\]"]+)',
    re.DOTALL,
)


def storable_text(raw: bytes | str) -> str:
    """The text the inbox keeps for a received body, never the body's secrets.

    Bytes that are not UTF-8 are decoded with ``errors="replace"`` (each bad sequence becomes
    U+FFFD), and each NUL character (U+0000, which PostgreSQL text cannot hold) is replaced by
    U+FFFD, so that every body can be stored — such bodies are always rejected, the stored text
    shows what arrived. Then secrets are redacted (:func:`redact_body`). A body with neither is
    kept exactly as received.
    """
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    return redact_body(text.replace("\x00", "\ufffd"))


def redact_body(text: str) -> str:
    """``text`` with every secret value replaced by ``"[redacted]"``.

    A JSON body is re-serialised (compact) only when it held a secret, else returned exactly
    as received. Text that is not JSON gets :func:`redact_text`.
    """
    if "\\" not in text and not any(key in text for key in SECRET_KEYS):
        return text  # no secret key, not even an escaped one: nothing to parse
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return redact_text(text)
    replaced, found = _redact_in_place(value)
    if not replaced:
        return text
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:  # nested deeper than orjson writes: redact the text instead
        redacted = redact_text(text)
    if any(secret in redacted for secret in found):
        return WITHHELD  # e.g. an escaped key, which the textual redaction cannot see
    return redacted


def redact_text(text: str) -> str:
    """Conservative textual redaction for text that is not JSON: the value after each
    ``"AccessToken":``, ``"ApiKey":`` or ``"ClientToken":`` (a string, escapes included, up to
    its closing quote or the end of the text; or a bare word) becomes ``"[redacted]"``."""
    return _SECRET_IN_TEXT.sub(lambda m: m.group(1) + f'"{REDACTED}"', text)


def _redact_in_place(value: Any) -> tuple[int, list[str]]:
    """Replace every value under a secret key (null included) in freshly parsed JSON; return
    how many were replaced and the secret strings removed (iterative: any depth)."""
    replaced = 0
    found: list[str] = []
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, child in node.items():
                if key in SECRET_KEYS and child != REDACTED:
                    node[key] = REDACTED
                    replaced += 1
                    found.extend(_strings(child))
                else:
                    stack.append(child)
        elif isinstance(node, list):
            stack.extend(node)
    return replaced, found


def _strings(value: Any) -> list[str]:
    """Every non-empty string in a removed value (a secret could be an object's member)."""
    out: list[str] = []
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if node:
                out.append(node)
        elif isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return out
