"""Cloud Function `reconcile`: compare everything window by window (daily); reports what it
corrected — the drift webhooks and polls missed. `?entity=customers` limits it to one entity."""

from __future__ import annotations

from typing import Any

import flask
import functions_framework

from functions._job import run_job
from shared.db.store import Store
from shared.sync.engine import ENTITIES, SyncEngine
from shared.sync.runs import Run


@functions_framework.http
def reconcile(request: flask.Request) -> tuple[dict[str, Any], int]:
    only = request.args.get("entity")

    async def work(_: Store, engine: SyncEngine, run: Run) -> None:
        for entity in ENTITIES:
            if only in (None, entity):
                await engine.reconcile(entity, run)

    return run_job("reconcile", work)
