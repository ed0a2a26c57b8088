"""Cloud Function `process_events`: drain the event inbox, each connection its own events
(scheduled every minute)."""

from __future__ import annotations

from typing import Any

import flask
import functions_framework

from functions._job import run_connections_job
from shared.connections import jobs


@functions_framework.http
def process_events(request: flask.Request) -> tuple[dict[str, Any], int]:
    # the inbox's rows are claimed one by one (SKIP LOCKED): instances share every connection
    return run_connections_job("process_events", jobs.process_events, exclusive=False)
