"""Cloud Function `poll_changes`: one incremental pass over every entity of every due
connection (every 5 minutes)."""

from __future__ import annotations

from typing import Any

import flask
import functions_framework

from functions._job import run_connections_job
from shared.connections import jobs


@functions_framework.http
def poll_changes(request: flask.Request) -> tuple[dict[str, Any], int]:
    return run_connections_job("poll_changes", jobs.poll())
