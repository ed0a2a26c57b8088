"""What every scheduled function does around its work: the job runner
(:mod:`shared.connections.runner`, the one the commands use too) with a scheduled function's
options, on the instance's store, and its outcome as an HTTP answer.

A Mews job (:func:`run_connections_job`) serves every due connection within the invocation's
time budget, each in its own live run on its own token's budget; a database job
(:func:`run_job`) is one live run. Either way: one summary, and a non-2xx answer when the work
did not succeed (Cloud Scheduler retries); a run that found its work held by another, or no
connection due, is `skipped`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from functions.runtime import ConfigurationError, runtime
from shared.connections import runner
from shared.connections.fleet import OK, ConnectionWork
from shared.db.store import Store
from shared.logs import redact_text
from shared.sync.liveness import Liveness


def run_job(job: str, work: runner.DatabaseWork) -> tuple[dict[str, Any], int]:
    """A database job (no Mews): one live run."""

    async def main(store: Store) -> dict[str, Any]:
        liveness = Liveness.of(runtime().settings)
        return (await runner.run_database_job(store, job, work, liveness)).summary()

    return _answer(main)


def run_connections_job(
    job: str, work: ConnectionWork, *, every_seconds: int = 0, exclusive: bool = True
) -> tuple[dict[str, Any], int]:
    """A Mews job over every due connection (see the module)."""

    async def main(store: Store) -> dict[str, Any]:
        settings = runtime().settings
        options = runner.scheduled(settings, every_seconds=every_seconds, exclusive=exclusive)
        result = await runner.run_connections_job(store, settings, job, work, options)
        return result.summary()

    return _answer(main)


def _answer(main: Callable[[Store], Awaitable[dict[str, Any]]]) -> tuple[dict[str, Any], int]:
    try:
        rt = runtime()
    except ConfigurationError as exc:  # logged once by the runtime
        return {"status": "failed", "error": str(exc)}, 500

    async def with_store() -> dict[str, Any]:
        return await main(await rt.store())

    try:
        summary = rt.run(with_store())
    except ConfigurationError as exc:
        return {"status": "failed", "error": str(exc)}, 500
    except Exception as exc:  # the run records the details; the answer names the failure
        return {"status": "failed", "error": f"{type(exc).__name__}: {redact_text(str(exc))}"}, 503
    return summary, 200 if summary["status"] in OK else 503
