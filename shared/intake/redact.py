"""What of a received body may be stored: secrets removed, NUL replaced (pure, no I/O).

Integration Webhooks carry the connection's AccessToken (IntegrationCreated ``Data.AccessToken``)
or its regenerated key (IntegrationApiKeyCreated ``Data.ApiKey``). The token itself is only
ever kept encrypted (``connections``); the inbox keeps the body with every value under a secret
key (the Mews names in any letter case, anywhere in the JSON, however the key is escaped)
replaced by ``"[redacted]"``. Text that is not JSON is redacted member by member: each
``"<key>":`` is decoded as JSON would decode it (``"Access\u0054oken"`` is ``AccessToken``),
and each ``<key>=`` of a query string is percent-decoded (``Token=``, the webhook's URL secret,
included). The database does the same again for every writer (``app.redact_body``); this is
the first line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote_plus

import orjson

SECRET_KEYS = frozenset({"AccessToken", "ApiKey", "ClientToken"})
REDACTED = "[redacted]"
# what is stored instead of a body whose secret could not be removed any other way
WITHHELD = '{"withheld": "the body carried a secret that could not be redacted"}'

_SECRET_NAMES = frozenset(key.lower() for key in SECRET_KEYS)
# names whose value in a query string (``a=1&AccessToken=...``) is a secret: ``Token`` is the
# parameter that carries the webhook's URL secret
_QUERY_SECRET_NAMES = _SECRET_NAMES | {"token"}

# in text that is not JSON: a JSON string followed by a colon (a member's key, escapes and all)
_KEY = re.compile(r'"((?:[^"\\]|\\.)*)"\s*:\s*', re.DOTALL)
# ... and a secret key's value: a string (possibly escaped, possibly cut off by the end of the
# text), an object or array (the rest of the text: where it ends cannot be told), or a bare word
_VALUE = re.compile(r'"(?:[^"\\]|\\.)*(?:"|\\?\Z)|[\[{].*|[^\s,}\]"]+', re.DOTALL)
# a query-string parameter: its name (percent-encoded or not) and its value
_PARAMETER = re.compile(r"(?<![\w%.~-])([\w%.~+-]+)=([^&\s\"'#<>]*)")


def is_secret_key(key: str) -> bool:
    """Whether a (decoded) JSON key names a secret: a Mews secret name in any letter case."""
    return key.lower() in _SECRET_NAMES


def storable_text(raw: bytes | str, secrets: Iterable[str] = ()) -> str:
    """The text the inbox keeps for a received body, never the body's secrets.

    Bytes that are not UTF-8 are decoded with ``errors="replace"`` (each bad sequence becomes
    U+FFFD), and each NUL character (U+0000, which PostgreSQL text cannot hold) is replaced by
    U+FFFD, so that every body can be stored — such bodies are always rejected, the stored text
    shows what arrived. Then secrets are redacted (:func:`redact_body`), and every occurrence
    of one of ``secrets`` (the webhook's URL secret) is replaced. A body with neither is kept
    exactly as received.
    """
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    text = redact_body(text.replace("\x00", "\ufffd"))
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact_body(text: str) -> str:
    """``text`` with every secret value replaced by ``"[redacted]"``.

    A JSON body is re-serialised (compact) only when it held a secret, else returned exactly
    as received. Text that is not JSON gets :func:`redact_text`.
    """
    lowered = text.lower()
    if "\\" not in text and "=" not in text and not any(k in lowered for k in _SECRET_NAMES):
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
        return WITHHELD  # a safety net: the textual redaction missed what the parser found
    return redacted


def redact_text(text: str) -> str:
    """Conservative textual redaction for text that is not JSON.

    The value after each member key that decodes to a secret name (``"AccessToken":``,
    ``"Access\\u0054oken":``, ``"apikey":`` ...) becomes ``"[redacted]"``: a string (escapes
    included, up to its closing quote or the end of the text), a bare word, or an object or
    array together with the rest of the text. Then the value of each query-string parameter
    named so, or ``Token``, becomes ``[redacted]``.
    """
    parts: list[str] = []
    position = 0
    while (key := _KEY.search(text, position)) is not None:
        parts.append(text[position : key.end()])
        position = key.end()
        if is_secret_key(_decoded_key(key.group(1))):
            value = _VALUE.match(text, position)
            if value is not None:
                parts.append(f'"{REDACTED}"')
                position = value.end()
    parts.append(text[position:])
    return _PARAMETER.sub(_redact_parameter, "".join(parts))


def _decoded_key(raw: str) -> str:
    """A JSON key's text as JSON decodes it (escapes resolved); as written when it is not a
    valid JSON string."""
    try:
        decoded = json.loads(f'"{raw}"', strict=False)
    except ValueError:
        return raw
    return decoded if isinstance(decoded, str) else raw


def _redact_parameter(match: re.Match[str]) -> str:
    name = unquote_plus(match.group(1)).lower()
    if name in _QUERY_SECRET_NAMES and match.group(2):
        return f"{match.group(1)}={REDACTED}"
    return match.group(0)


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
                if is_secret_key(key) and child != REDACTED:
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
