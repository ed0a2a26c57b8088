"""Cloud Function `reconcile`: compare everything window by window (daily); reports what it
corrected — the drift webhooks and polls missed."""

from __future__ import annotations

from typing import Any

import flask
import functions_framework

from functions._mews import connected_engine
from functions.runtime import runtime
from shared.sync.engine import ENTITIES
from shared.sync.runs import recorded_run


@functions_framework.http
def reconcile(request: flask.Request) -> tuple[dict[str, Any], int]:
    rt = runtime()
    only = request.args.get("entity")

    async def work() -> dict[str, Any]:
        store = await rt.store()
        async with (
            recorded_run(store, "reconcile") as run,
            connected_engine(rt.settings, store) as engine,
        ):
            for entity in ENTITIES:
                if only in (None, entity):
                    await engine.reconcile(entity, run)
        return {"run_id": str(run.id), "status": run.status, "counts": dict(run.counts)}

    try:
        summary = rt.run(work())
    except Exception as exc:
        return {"status": "failed", "error": type(exc).__name__}, 503
    return summary, 200
