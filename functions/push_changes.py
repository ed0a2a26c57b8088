"""Cloud Function `push_changes`: send staff edits to Mews (every 2 minutes)."""

from __future__ import annotations

from typing import Any

import flask
import functions_framework

from functions._job import run_job
from shared.db.store import Store
from shared.sync.engine import SyncEngine
from shared.sync.liveness import unit
from shared.sync.push import push_changes as push
from shared.sync.runs import Run


async def _push(store: Store, engine: SyncEngine, run: Run) -> None:
    async with unit(store, run, "push_changes") as mine:
        if mine:
            await push(store, engine, run)


@functions_framework.http
def push_changes(request: flask.Request) -> tuple[dict[str, Any], int]:
    return run_job("push_changes", _push)
