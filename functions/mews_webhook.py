"""Cloud Function `mews_webhook`: check the URL secret, store the raw body, answer 202.

Every answer is JSON (see :mod:`shared.intake.store` for which status when); no input makes it
answer 500. A 500 means the deployment's configuration is invalid (the one-line reason is the
answer) or a bug (logged).
"""

from __future__ import annotations

from typing import Any

import flask
import functions_framework

from functions.runtime import ConfigurationError, runtime
from shared.intake.store import IntakeResult, answer_webhook
from shared.logs import get_logger

log = get_logger("guesthub.mews_webhook")


@functions_framework.http
def mews_webhook(request: flask.Request) -> tuple[dict[str, Any], int]:
    try:
        rt = runtime()
    except ConfigurationError as exc:  # logged once by the runtime
        return {"error": str(exc)}, 500

    async def handle() -> IntakeResult:
        return await answer_webhook(
            rt.store, request.get_data(), request.args.get("Token"), rt.settings
        )

    try:
        result = rt.run(handle())
    except ConfigurationError as exc:  # logged once by the runtime
        return {"error": str(exc)}, 500
    except Exception as exc:  # a bug: still a JSON answer, never an HTML page
        log.exception("webhook failed", error_type=type(exc).__name__)
        return {"error": f"internal error ({type(exc).__name__}); Mews will retry"}, 500
    log.info("webhook", status=result.status, stored=result.body.get("stored"))
    return result.body, result.status
