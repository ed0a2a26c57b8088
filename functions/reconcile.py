"""Cloud Function `reconcile`: compare everything window by window, each connection once a
day: scheduled hourly, an invocation serves the connections not compared for 20 hours, as many
as its time budget allows (the rest wait for the next hour). Reports what it corrected — the
drift webhooks and polls missed. `?entity=customers` limits it to one entity."""

from __future__ import annotations

from typing import Any

import flask
import functions_framework

from functions._job import run_connections_job
from shared.connections import jobs
from shared.sync.entities import UnknownEntityError, entities

DAILY = 20 * 3600  # a connection compared less than 20 h ago is not due


@functions_framework.http
def reconcile(request: flask.Request) -> tuple[dict[str, Any], int]:
    only = request.args.get("entity")
    try:
        chosen = entities(None if only is None else [only])
    except UnknownEntityError as exc:
        return {"status": "failed", "error": str(exc)}, 400
    return run_connections_job("reconcile", jobs.reconcile(chosen), every_seconds=DAILY)
