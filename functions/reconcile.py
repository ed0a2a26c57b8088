"""Cloud Function `reconcile`: compare everything window by window (daily); reports what it
corrected — the drift webhooks and polls missed. `?entity=customers` limits it to one entity."""

from __future__ import annotations

from typing import Any

import flask
import functions_framework

from functions._job import run_job
from shared.db.store import Store
from shared.sync.engine import ENTITIES, SyncEngine
from shared.sync.liveness import engine_units
from shared.sync.runs import Run


@functions_framework.http
def reconcile(request: flask.Request) -> tuple[dict[str, Any], int]:
    only = request.args.get("entity")

    async def work(store: Store, engine: SyncEngine, run: Run) -> None:
        entities = [e for e in ENTITIES if only in (None, e)]
        await engine_units(engine, run, "reconcile", entities, engine.reconcile)

    return run_job("reconcile", work)
