"""Cloud Function `mews_webhook`: check the URL secret, store the raw body, answer 202."""

from __future__ import annotations

from typing import Any

import flask
import functions_framework

from functions.runtime import runtime
from shared.intake.store import IntakeResult, accept_webhook
from shared.logs import get_logger

log = get_logger("guesthub.mews_webhook")


@functions_framework.http
def mews_webhook(request: flask.Request) -> tuple[dict[str, Any], int]:
    rt = runtime()
    settings = rt.settings

    async def handle() -> IntakeResult:
        return await accept_webhook(
            await rt.store(),
            request.get_data(),
            request.args.get("Token"),
            secret=settings.webhook_secret.get_secret_value() if settings.webhook_secret else None,
            encryption_key=settings.token_encryption_key.get_secret_value()
            if settings.token_encryption_key
            else None,
        )

    result = rt.run(handle())
    log.info("webhook", status=result.status, stored=result.body.get("stored"))
    return result.body, result.status
