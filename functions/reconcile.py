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
from shared.sync.engine import ENTITIES

DAILY = 20 * 3600  # a connection compared less than 20 h ago is not due


@functions_framework.http
def reconcile(request: flask.Request) -> tuple[dict[str, Any], int]:
    only = request.args.get("entity")
    if only is not None and only not in ENTITIES:
        return {
            "status": "failed",
            "error": f"unknown entity {only!r}: one of {', '.join(ENTITIES)}",
        }, 400
    entities = [e for e in ENTITIES if only in (None, e)]
    return run_connections_job("reconcile", jobs.reconcile(entities), every_seconds=DAILY)
