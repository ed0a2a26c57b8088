"""Structured logging: JSON in the cloud, readable console output on a terminal, no secrets.

:func:`mask_secrets` is a pure structlog processor. It redacts values under secret-looking keys
and any known secret string wherever it appears (a token inside a URL, an error message).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

import structlog

REDACTED = "***"
_SECRET_KEY = re.compile(
    r"(token|secret|password|passwd|api_?key|authorization|cookie|service_role|dsn|database_url)",
    re.IGNORECASE,
)
# a Mews-shaped token (32 hex, '-', 31 hex) or a JWT, wherever it appears in text
_TOKEN_SHAPES = re.compile(
    r"[0-9A-Fa-f]{32}-[0-9A-Fa-f]{31}|eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,}|([?&]Token=)[^&\s\"']+"
)
_URL_PASSWORD = re.compile(r"(postgres(?:ql)?://[^:/@\s]+:)[^@\s]+@")


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace every known secret and every token-shaped string in ``text``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    text = _URL_PASSWORD.sub(rf"\1{REDACTED}@", text)
    return _TOKEN_SHAPES.sub(lambda m: (m.group(1) or "") + REDACTED, text)


def _redact_value(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, Mapping):
        return {
            k: REDACTED if _SECRET_KEY.search(str(k)) else _redact_value(v, secrets)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact_value(v, secrets) for v in value]
    return value


class SecretMasker:
    """structlog processor: masks secret keys, known secret values and token shapes."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = tuple(s for s in secrets if s)

    def __call__(
        self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key in list(event_dict):
            if _SECRET_KEY.search(key):
                event_dict[key] = REDACTED
            else:
                event_dict[key] = _redact_value(event_dict[key], self.secrets)
        return event_dict


class _LiveStreamLogger:
    """Writes each line to whatever ``sys.stdout``/``sys.stderr`` is *now*.

    structlog's PrintLogger keeps the stream it was built with; a CLI runner or a test harness
    that swaps and closes its stream would then make every later log line raise.
    """

    def __init__(self, stream: str) -> None:
        self._stream = stream

    def msg(self, message: str) -> None:
        print(message, file=getattr(sys, self._stream), flush=True)

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


def configure_logging(
    *, level: str = "INFO", json: bool | None = None, secrets: Iterable[str] = ()
) -> None:
    """Configure structlog once per process (entry points call this, never an import)."""
    use_json = (not sys.stdout.isatty()) if json is None else json
    renderer: Any = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            SecretMasker(secrets),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=lambda *_args: _LiveStreamLogger("stdout" if use_json else "stderr"),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None, **bound: Any) -> Any:
    """A bound structlog logger."""
    return structlog.get_logger(name, **bound)
