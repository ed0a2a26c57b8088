"""Cloud Function `process_events`: drain the event inbox (scheduled every minute)."""

from __future__ import annotations

from typing import Any

import flask
import functions_framework

from functions._mews import connected_engine
from functions.runtime import runtime
from shared.sync.events import process_events as drain
from shared.sync.runs import recorded_run


@functions_framework.http
def process_events(request: flask.Request) -> tuple[dict[str, Any], int]:
    rt = runtime()

    async def work() -> dict[str, Any]:
        store = await rt.store()
        async with (
            recorded_run(store, "process_events") as run,
            connected_engine(rt.settings, store) as engine,
        ):
            await drain(store, engine, run)
        return {"run_id": str(run.id), "status": run.status, "counts": dict(run.counts)}

    try:
        summary = rt.run(work())
    except Exception as exc:
        return {"status": "failed", "error": type(exc).__name__}, 503
    return summary, 200 if summary["status"] in ("succeeded", "partial") else 503
