"""Cloud Function `push_changes`: send staff edits to Mews (every 2 minutes)."""

from __future__ import annotations

from typing import Any

import flask
import functions_framework

from functions._mews import connected_engine
from functions.runtime import runtime
from shared.sync.push import push_changes as push
from shared.sync.runs import recorded_run


@functions_framework.http
def push_changes(request: flask.Request) -> tuple[dict[str, Any], int]:
    rt = runtime()

    async def work() -> dict[str, Any]:
        store = await rt.store()
        async with (
            recorded_run(store, "push_changes") as run,
            connected_engine(rt.settings, store) as engine,
        ):
            await push(store, engine, run)
        return {"run_id": str(run.id), "status": run.status, "counts": dict(run.counts)}

    try:
        summary = rt.run(work())
    except Exception as exc:
        return {"status": "failed", "error": type(exc).__name__}, 503
    return summary, 200
