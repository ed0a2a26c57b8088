"""Cloud Function `purge_inbox`: delete processed inbox rows and finished runs past their
retention (daily)."""

from __future__ import annotations

from typing import Any

import flask
import functions_framework

from functions._job import run_job
from functions.runtime import runtime
from shared.db.store import Store
from shared.sync.events import purge_inbox as purge
from shared.sync.runs import Run


async def _purge(store: Store, run: Run) -> None:
    settings = runtime().settings
    await purge(
        store,
        run,
        retention_days=settings.inbox_retention_days,
        runs_retention_days=settings.runs_retention_days,
    )


@functions_framework.http
def purge_inbox(request: flask.Request) -> tuple[dict[str, Any], int]:
    return run_job("purge_inbox", _purge)
