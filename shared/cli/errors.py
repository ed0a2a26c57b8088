"""The CLI's one error boundary: every expected failure is one line on stderr and an exit code.

The line says what failed, where (a URL, host and database — never a secret), why (the real
cause, such as "connection refused") and what to do. ``--debug`` (or ``LOG_LEVEL=DEBUG``) also
prints the traceback. The root command group runs every command inside :func:`boundary`, so
``guesthub`` (``main()``) and ``CliRunner().invoke(app, ...)`` behave the same.

Exit codes (README "Exit codes"):

====  ===========================================================================
0     ok
1     the work failed (a command that found nothing to do says so with 1, too)
2     usage: an unknown command or a bad option (click's own)
3     configuration: an invalid setting, missing Google credentials
4     the database is unreachable, not migrated, or its connection was lost for good
5     Mews is unreachable or refused the request
6     needs attention (reserved for ``status``)
7     skipped: the work is held by another live run (``--no-wait``)
====  ===========================================================================

A command that left work for its next run (a ``partial`` run: a window Mews kept failing, named
on stderr) exits 6 as well: its data is not complete yet.

Foreign exception types are matched by module and class name through ``sys.modules``: an
exception of a package that was never imported cannot occur, and the boundary imports nothing
heavy (``guesthub --help`` stays fast).
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from shared.settings import Settings


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1
    USAGE = 2
    CONFIGURATION = 3
    DATABASE = 4
    MEWS = 5
    ATTENTION = 6
    SKIPPED = 7


class CommandError(Exception):
    """An expected failure a command reports itself: its message is the line shown."""

    def __init__(self, message: str, code: ExitCode = ExitCode.FAILURE) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Failure:
    message: str
    code: ExitCode


# what the running command talks to (set by command_settings), for the messages
_settings: ContextVar[Settings | None] = ContextVar("guesthub_cli_settings", default=None)

NOT_MIGRATED_CODES = frozenset({"42883", "42P01", "3F000", "PGRST202", "PGRST205"})
DEBUG_HINT = "rerun with --debug for the traceback"


def remember(settings: Settings) -> None:
    """Tell the boundary which database and Mews the command uses (named in its messages)."""
    _settings.set(settings)


@contextmanager
def boundary(*, debug: bool = False) -> Iterator[None]:
    """Run a command: an exception becomes one line on stderr and ``typer.Exit(code)``."""
    token = _settings.set(None)
    try:
        yield
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except Exception as exc:
        if _is(exc, "typer._click.exceptions", "ClickException") or _is(
            exc, "click.exceptions", "ClickException"
        ):
            raise  # usage errors: click prints them and exits 2
        from shared.logs import redact_text  # structlog: not for `guesthub --help`

        failure = explain(exc)
        secrets = _secrets()
        if debug or _log_level() == "DEBUG":
            trace = "".join(traceback.format_exception(exc))
            typer.echo(redact_text(trace, secrets), err=True, nl=False)
        typer.echo(f"error: {one_line(redact_text(failure.message, secrets))}", err=True)
        raise typer.Exit(int(failure.code)) from exc
    finally:
        _settings.reset(token)


def explain(exc: BaseException) -> Failure:
    """The line and exit code for ``exc`` (the first matching entry of :data:`HANDLERS`); for
    a group of exceptions (concurrent work), its first."""
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return explain(exc.exceptions[0])
    for module, name, handler in HANDLERS:
        if _is(exc, module, name):
            return handler(exc)
    return Failure(
        f"unexpected {type(exc).__name__}: {_first_line(exc)} ({DEBUG_HINT})", ExitCode.FAILURE
    )


def one_line(text: str) -> str:
    return " ".join(text.split())


# -- handlers -----------------------------------------------------------------------------


def _command(exc: BaseException) -> Failure:
    return Failure(str(exc), getattr(exc, "code", ExitCode.FAILURE))


def _settings_error(exc: BaseException) -> Failure:
    return Failure(f"invalid configuration: {exc}", ExitCode.CONFIGURATION)


def _migration(exc: BaseException) -> Failure:
    return Failure(
        f"{_database()}: {exc}; fix it and run `guesthub db migrate` again", ExitCode.FAILURE
    )


def _package_data(exc: BaseException) -> Failure:
    return Failure(f"{exc} (is guesthub installed from its wheel?)", ExitCode.CONFIGURATION)


def _store(exc: BaseException) -> Failure:
    code = getattr(exc, "code", None)
    fn = getattr(exc, "fn", "")
    message = str(exc).removeprefix(f"{fn}: ").removesuffix(f" [{code}]")
    if _is(exc, "shared.db.store", "ConnectionLostError"):
        # the call that lost it first (a cleanup's call may have failed the same way after it)
        first = [e for e in _chain(exc) if _is(e, "shared.db.store", "ConnectionLostError")][-1]
        return Failure(
            f"lost the connection to {getattr(first, 'where', None) or _database()} during"
            f" {getattr(first, 'fn', fn)}: {getattr(first, 'reason', message)}; check that the"
            " server is running, then run the command again",
            ExitCode.DATABASE,
        )
    if code in NOT_MIGRATED_CODES:
        return _not_migrated(message)
    if _caused_by(exc, "httpx", "TransportError"):
        return _unreachable(network_reason(exc))
    if fn == "connect":
        return _unreachable(pg_reason(message))
    return Failure(f"{_database()} refused {fn}: {message}", ExitCode.FAILURE)


def _embedded(exc: BaseException) -> Failure:
    return Failure(f"{exc}; or set DATABASE_URL to a running PostgreSQL", ExitCode.DATABASE)


def _pg_undefined(exc: BaseException) -> Failure:
    return _not_migrated(_first_line(exc))


def _pg_operational(exc: BaseException) -> Failure:
    return _unreachable(pg_reason(str(exc)))


def _pg_error(exc: BaseException) -> Failure:
    return Failure(f"{_database()} refused the command: {_first_line(exc)}", ExitCode.FAILURE)


def _not_migrated(reason: str) -> Failure:
    return Failure(
        f"{_database()} is not migrated ({reason}): run `guesthub db migrate`", ExitCode.DATABASE
    )


def _unreachable(reason: str) -> Failure:
    hint = (
        "create it, or fix DATABASE_URL"
        if "does not exist" in reason
        else "check SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY"
        if _using_supabase()
        else "check DATABASE_URL and that the server is running"
    )
    return Failure(f"cannot connect to {_database()}: {reason}; {hint}", ExitCode.DATABASE)


def _mews(exc: BaseException) -> Failure:
    mews = f"Mews at {_mews_url()}"
    if _is(exc, "shared.mews.errors", "MewsAuthError"):
        hint = "check MEWS_ACCESS_TOKEN and MEWS_CLIENT_TOKEN"
        return Failure(f"{mews} refused the tokens: {exc}; {hint}", ExitCode.MEWS)
    if _is(exc, "shared.mews.errors", "MewsNetworkError"):
        operation = getattr(exc, "operation", "?")
        return Failure(
            f"cannot reach {mews} ({operation}): {network_reason(exc)}; check MEWS_PLATFORM_URL"
            " and the network",
            ExitCode.MEWS,
        )
    if getattr(exc, "retriable", False):
        return Failure(f"{mews} still failing after retries: {exc}; try again later", ExitCode.MEWS)
    return Failure(f"{mews} refused the request: {exc}", ExitCode.MEWS)


def _google_credentials(_: BaseException) -> Failure:
    return Failure(
        "no Google credentials (Application Default Credentials not found): run `gcloud auth"
        " application-default login` or set GOOGLE_APPLICATION_CREDENTIALS",
        ExitCode.CONFIGURATION,
    )


def _google_api(exc: BaseException) -> Failure:
    return Failure(f"Google Cloud refused the call: {_first_line(exc)}", ExitCode.FAILURE)


Handler = Callable[[BaseException], Failure]

# first match wins: subclasses before their bases
HANDLERS: tuple[tuple[str, str, Handler], ...] = (
    (__name__, "CommandError", _command),
    ("shared.settings", "SettingsError", _settings_error),
    ("shared.db.migrations", "MigrationError", _migration),
    ("shared.package_data", "PackageDataError", _package_data),
    ("shared.db.store", "StoreError", _store),
    ("shared.db.embedded", "EmbeddedServerError", _embedded),
    ("psycopg.errors", "UndefinedFunction", _pg_undefined),
    ("psycopg.errors", "UndefinedTable", _pg_undefined),
    ("psycopg.errors", "InvalidSchemaName", _pg_undefined),
    ("psycopg", "OperationalError", _pg_operational),
    ("psycopg", "Error", _pg_error),
    ("shared.mews.errors", "MewsError", _mews),
    ("google.auth.exceptions", "DefaultCredentialsError", _google_credentials),
    ("google.api_core.exceptions", "GoogleAPIError", _google_api),
)


# -- reasons and places -------------------------------------------------------------------


def pg_reason(message: str) -> str:
    """libpq's reason, e.g. 'connection refused' from 'connection failed: connection to server
    at "127.0.0.1", port 1 failed: Connection refused / Is the server running ...'."""
    lines = message.strip().splitlines()
    reason = (lines[0] if lines else message).rsplit(" failed: ", 1)[-1]
    reason = reason.strip().removeprefix("FATAL:").strip()
    return reason[:1].lower() + reason[1:]


def network_reason(exc: BaseException) -> str:
    """The socket's reason under an HTTP client's error ('connection refused', 'timed out')."""
    seen = _chain(exc)
    for error in seen:
        if isinstance(error, OSError) and isinstance(error.errno, int) and error.errno > 0:
            return os.strerror(error.errno).lower()
    for error in seen:
        if isinstance(error, TimeoutError) or "Timeout" in type(error).__name__:
            return "no answer before the timeout"
    inner = seen[-1]
    return str(inner) or type(inner).__name__


def _database() -> str:
    settings = _settings.get()
    if settings is None:
        return "the database"
    from shared.db.connect import describe_database

    return describe_database(settings)


def _using_supabase() -> bool:
    settings = _settings.get()
    return settings is not None and settings.database_url is None and bool(settings.supabase_url)


def _mews_url() -> str:
    settings = _settings.get()
    return settings.mews_platform_url if settings is not None else "MEWS_PLATFORM_URL"


def _log_level() -> str:
    settings = _settings.get()
    level = settings.log_level if settings is not None else os.environ.get("LOG_LEVEL", "")
    return level.upper()


def _secrets() -> list[str]:
    settings = _settings.get()
    if settings is None:
        return []
    from shared.settings import secret_values

    return secret_values(settings)


def _is(exc: BaseException, module: str, name: str) -> bool:
    cls = getattr(sys.modules.get(module), name, None)
    return isinstance(cls, type) and isinstance(exc, cls)


def _caused_by(exc: BaseException, module: str, name: str) -> bool:
    return any(_is(error, module, name) for error in _chain(exc))


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes and contexts, outermost first (contexts hidden by ``from None``
    included: they hold the socket's reason)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
