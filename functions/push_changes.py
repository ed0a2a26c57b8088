"""Cloud Function `push_changes`: send staff edits to Mews (every 2 minutes)."""

from __future__ import annotations

from typing import Any

import flask
import functions_framework

from functions._job import run_job
from shared.sync.push import push_changes as push


@functions_framework.http
def push_changes(request: flask.Request) -> tuple[dict[str, Any], int]:
    return run_job("push_changes", push)
