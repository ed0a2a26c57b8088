"""Cloud Function `poll_changes`: one incremental pass over every entity (every 5 minutes)."""

from __future__ import annotations

from typing import Any

import flask
import functions_framework

from functions._mews import connected_engine
from functions.runtime import runtime
from shared.sync.engine import ENTITIES
from shared.sync.runs import recorded_run


@functions_framework.http
def poll_changes(request: flask.Request) -> tuple[dict[str, Any], int]:
    rt = runtime()

    async def work() -> dict[str, Any]:
        store = await rt.store()
        async with (
            recorded_run(store, "poll_changes") as run,
            connected_engine(rt.settings, store) as engine,
        ):
            for entity in ENTITIES:
                await engine.poll(entity, run)
        return {"run_id": str(run.id), "status": run.status, "counts": dict(run.counts)}

    try:
        summary = rt.run(work())
    except Exception as exc:
        return {"status": "failed", "error": type(exc).__name__}, 503
    return summary, 200
