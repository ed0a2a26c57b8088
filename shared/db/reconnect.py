"""A lost database connection, told apart from a refusal, and which calls may be repeated.

A connection is lost when the server restarts, its backend is terminated
(``pg_terminate_backend``), or the network drops: libpq reports no SQLSTATE, or one of class
08 (connection exception) or 57P01/57P02/57P03/57P05 (the server shut the session down). Every
other error is the database refusing the call (a constraint, a statement timeout, a missing
function) and is reported as such.

A statement whose connection died may or may not have committed, so only a call that is
harmless to run twice is repeated on a new connection (:func:`safe_to_repeat`):

- a function PostgreSQL knows cannot write (declared ``STABLE`` or ``IMMUTABLE``);
- the guarded upserts (``upsert_<table>``): a record already stored is left unchanged (the
  second run counts it ``unchanged`` instead of ``inserted``);
- the calls of :data:`IDEMPOTENT`, whose second run leaves what the first left: checkpoints
  (saved values, a window marked done, a reset), heartbeats and lease renewals, a lease taken
  or released by the same holder, an enterprise registered, quarantine entries resolved,
  statistics refreshed; and ``rate_limit_acquire``, whose second run takes one more slot of the
  request budget than was used (stricter, never over Mews' limit).

Any other call (a run started or finished, records quarantined: a sighting counted twice, an
inbox claim, a push recorded) is not repeated once sent: the caller gets
:class:`~shared.db.store.ConnectionLostError` saying so. A call that never reached the server
(no connection could be had) is always tried again.
"""

from __future__ import annotations

import psycopg
from psycopg_pool import PoolClosed

from shared.logs import get_logger, redact_text

log = get_logger("shared.db.store")
RECONNECT_SECONDS = 30.0  # how long a lost connection is tried again before the call fails
# once a call has given up, the next ones try this long, until one succeeds (a database that
# is gone fails a run's remaining calls in seconds, not 30 s each)
GIVEN_UP_SECONDS = 1.0
LOST_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "57P05"})
IDEMPOTENT_PREFIXES = ("upsert_",)
IDEMPOTENT = frozenset(
    {
        "analyze_tables",
        "checkpoint_reset",
        "checkpoint_save",
        "checkpoint_window_done",
        "connection_renew",
        "lease_acquire",
        "lease_release",
        "rate_limit_acquire",
        "register_enterprise",
        "run_heartbeat",
    }
)


def connection_lost(exc: psycopg.Error) -> bool:
    """Whether ``exc`` says the connection is gone (not that the database refused the call,
    nor that the store itself was closed)."""
    code = exc.sqlstate
    if code is None:
        return isinstance(exc, psycopg.OperationalError) and not isinstance(exc, PoolClosed)
    return code.startswith("08") or code in LOST_SQLSTATES


def safe_to_repeat(fn: str, *, read_only: bool) -> bool:
    """Whether the API function ``fn`` may run again after a run whose outcome is unknown."""
    return read_only or fn.startswith(IDEMPOTENT_PREFIXES) or fn in IDEMPOTENT


def reopening(fn: str, attempt: int, exc: BaseException) -> None:
    """Say that the connection ``fn`` ran on was lost and is being reopened."""
    log.warning(
        "database connection lost; reopening it",
        fn=fn,
        attempt=attempt,
        error=redact_text(reason(exc)),
    )


def reason(exc: BaseException) -> str:
    """The driver's reason on one line, e.g. 'terminating connection due to administrator
    command' or 'database "x" is not currently accepting connections'."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = (lines[0] if lines else type(exc).__name__).rsplit(" failed: ", 1)[-1]
    return text.removeprefix("FATAL:").strip() or type(exc).__name__
