"""Cloud Function `score_profiles`: enrich, find duplicates, rescore, snapshot (every 15 min).
Scoring reads only the database: one run serves every enterprise mirrored."""

from __future__ import annotations

from typing import Any

import flask
import functions_framework

from functions._job import run_job
from shared.db.store import Store
from shared.quality.job import score_profiles as score
from shared.sync.runs import Run


async def _score(store: Store, run: Run) -> None:
    await score(store, run)


@functions_framework.http
def score_profiles(request: flask.Request) -> tuple[dict[str, Any], int]:
    return run_job("score_profiles", _score)
