"""Cloud Function `process_events`: drain the event inbox (scheduled every minute)."""

from __future__ import annotations

from typing import Any

import flask
import functions_framework

from functions._job import run_job
from shared.sync.events import process_events as drain


@functions_framework.http
def process_events(request: flask.Request) -> tuple[dict[str, Any], int]:
    return run_job("process_events", drain)
