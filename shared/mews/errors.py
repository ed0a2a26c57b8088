"""One error tree for every Mews failure, decided by status code (docs/MEWS.md#errors).

- :class:`MewsFatalError` — our bug or configuration (400, 404, 413): do not retry unchanged.
- :class:`MewsAuthError` — 401: the connection is unusable; stop its jobs, alert, no retry loop.
- :class:`MewsBusinessRuleError` — 403: Mews refused the action; the message is for hotel staff.
- :class:`MewsConflictError` — 409: data changed meanwhile; re-read and re-resolve.
- :class:`MewsRetriableError` — 408, 429, 5xx and network failures; ``retry_after`` in seconds
  when Mews said how long to wait.

Messages carry the Mews ``Message`` and ``RequestId``, never a token or a request body.
"""

from __future__ import annotations

import email.utils
import json
import math
from datetime import UTC, datetime
from typing import ClassVar

from shared.logs import redact_text


class MewsError(Exception):
    """A failed Mews call. ``status`` is None for network failures."""

    run_outcome: ClassVar[str] = "failed"
    retriable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        operation: str,
        status: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.message = redact_text(message)
        self.operation = operation
        self.status = status
        self.request_id = request_id
        self.retry_after = retry_after
        where = f"{operation}: " + (f"HTTP {status}: " if status is not None else "")
        suffix = f" (RequestId {request_id})" if request_id else ""
        super().__init__(f"{where}{self.message}{suffix}")


class MewsFatalError(MewsError):
    """Our request is wrong (bad input, wrong path, too large): retrying it unchanged is useless."""


class MewsBadRequestError(MewsFatalError):
    """400: malformed input, unknown id, or a state that forbids the action."""


class MewsNotFoundError(MewsFatalError):
    """404: the path does not exist (a bug or configuration problem)."""


class MewsTooLargeError(MewsFatalError):
    """413: the request body is too large; split it."""


class MewsAuthError(MewsError):
    """401: invalid or expired tokens, a disabled enterprise or integration, or no permission."""


class MewsBusinessRuleError(MewsError):
    """403: Mews validated the request and refused it; the message is meant for hotel staff."""


class MewsConflictError(MewsError):
    """409: the data changed meanwhile; re-read the entity and resolve again."""


class MewsRetriableError(MewsError):
    """Worth retrying later: ``retry_after`` seconds when known."""

    retriable = True


class MewsTimeoutError(MewsRetriableError):
    """408: the request needed too much work; ask for less (smaller windows or pages)."""


class MewsRateLimitedError(MewsRetriableError):
    """429: over the per-AccessToken limit; wait ``Retry-After``."""

    run_outcome = "rate_limited"


class MewsServerError(MewsRetriableError):
    """5xx: a fault on Mews' side."""


class MewsNetworkError(MewsRetriableError):
    """No answer: connection refused or reset, or our timeout expired."""


class MewsResponseError(MewsFatalError):
    """2xx with a body that is not the JSON object the operation returns."""


# Every status docs/MEWS.md#errors lists as an error. Other 5xx map to MewsServerError and
# other 4xx to MewsFatalError.
STATUS_ERRORS: dict[int, type[MewsError]] = {
    400: MewsBadRequestError,
    401: MewsAuthError,
    403: MewsBusinessRuleError,
    404: MewsNotFoundError,
    408: MewsTimeoutError,
    409: MewsConflictError,
    413: MewsTooLargeError,
    429: MewsRateLimitedError,
    500: MewsServerError,
}


def error_class(status: int) -> type[MewsError]:
    if status in STATUS_ERRORS:
        return STATUS_ERRORS[status]
    return MewsServerError if status >= 500 else MewsFatalError


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def error_from_response(
    operation: str, status: int, body: bytes, headers: dict[str, str]
) -> MewsError:
    """The error for an HTTP error response: its class from the status, its text from the
    Mews error body (``Message``, ``RequestId``) when there is one."""
    message = ""
    request_id = headers.get("request-id")
    try:
        data = json.loads(body) if body else None
    except ValueError:
        data = None
    if isinstance(data, dict):
        message = str(data.get("Message") or "")
        request_id = str(data.get("RequestId") or "") or request_id
    if not message:
        message = f"no error message (body of {len(body)} bytes)"
    return error_class(status)(
        message,
        operation=operation,
        status=status,
        request_id=request_id,
        retry_after=parse_retry_after(headers.get("retry-after")),
    )
