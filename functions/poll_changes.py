"""Cloud Function `poll_changes`: one incremental pass over every entity (every 5 minutes)."""

from __future__ import annotations

from typing import Any

import flask
import functions_framework

from functions._job import run_job
from shared.db.store import Store
from shared.sync.engine import ENTITIES, SyncEngine
from shared.sync.liveness import engine_units
from shared.sync.runs import Run


async def _poll(_: Store, engine: SyncEngine, run: Run) -> None:
    await engine_units(engine, run, "poll", ENTITIES, engine.poll)


@functions_framework.http
def poll_changes(request: flask.Request) -> tuple[dict[str, Any], int]:
    return run_job("poll_changes", _poll)
