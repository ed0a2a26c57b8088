"""What every scheduled function does around its work: a live run (heartbeat; dead runs marked
abandoned) with an honest outcome, one summary line, and a non-2xx answer when the run did not
succeed (Cloud Scheduler retries). A run that found all its units held by another is `skipped`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from functions.runtime import ConfigurationError, runtime
from shared.db.store import Store
from shared.logs import redact_text
from shared.sync.connect import connected_engine
from shared.sync.engine import SyncEngine
from shared.sync.liveness import live_run
from shared.sync.runs import Run

Work = Callable[[Store, SyncEngine, Run], Awaitable[None]]
OK = ("succeeded", "partial", "skipped")


def run_job(job: str, work: Work, *, needs_mews: bool = True) -> tuple[dict[str, Any], int]:
    try:
        rt = runtime()
    except ConfigurationError as exc:  # logged once by the runtime
        return {"status": "failed", "error": str(exc)}, 500

    async def main() -> dict[str, Any]:
        store = await rt.store()
        async with live_run(store, job) as run:
            if needs_mews:
                async with connected_engine(rt.settings, store) as engine:
                    await work(store, engine, run)
            else:
                await work(store, None, run)  # type: ignore[arg-type]
        return {"run_id": str(run.id), "status": run.status, "counts": dict(run.counts)}

    try:
        summary = rt.run(main())
    except ConfigurationError as exc:
        return {"status": "failed", "error": str(exc)}, 500
    except Exception as exc:  # the run records the details; the answer names the failure
        return {"status": "failed", "error": f"{type(exc).__name__}: {redact_text(str(exc))}"}, 503
    return summary, 200 if summary["status"] in OK else 503
