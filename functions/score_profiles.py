"""Cloud Function `score_profiles`: enrich, find duplicates, rescore, snapshot (every 15 min)."""

from __future__ import annotations

from typing import Any

import flask
import functions_framework

from functions.runtime import runtime
from shared.quality.job import score_profiles as score
from shared.sync.runs import recorded_run


@functions_framework.http
def score_profiles(request: flask.Request) -> tuple[dict[str, Any], int]:
    rt = runtime()

    async def work() -> dict[str, Any]:
        store = await rt.store()
        async with recorded_run(store, "score_profiles") as run:
            await score(store, run)
        return {"run_id": str(run.id), "status": run.status, "counts": dict(run.counts)}

    try:
        summary = rt.run(work())
    except Exception as exc:
        return {"status": "failed", "error": type(exc).__name__}, 503
    return summary, 200
