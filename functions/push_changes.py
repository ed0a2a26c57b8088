"""Cloud Function `push_changes`: send staff edits to Mews, each through the connection that
covers the guest's chain (every minute: the safety net under the real-time worker)."""

from __future__ import annotations

from typing import Any

import flask
import functions_framework

from functions._job import run_connections_job
from shared.connections import jobs


@functions_framework.http
def push_changes(request: flask.Request) -> tuple[dict[str, Any], int]:
    return run_connections_job("push_changes", jobs.push())
