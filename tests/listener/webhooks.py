"""Our webhook intake over HTTP, as the `mews_webhook` function runs it, for the simulator to
send General Webhooks to."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from shared.db.connect import open_store
from shared.db.store import Store
from shared.intake.store import accept_webhook
from shared.netserve import serve_in_thread
from shared.settings import Settings


@contextmanager
def webhook_receiver(settings: Settings, secret: str) -> Iterator[str]:
    """Yields the URL Mews is given (with the secret)."""

    async def receive(request: Request) -> JSONResponse:
        store: Store | None = None

        async def opened() -> Store:
            nonlocal store
            store = await open_store(settings)
            return store

        try:
            result = await accept_webhook(
                opened, await request.body(), request.query_params.get("Token"), secret=secret
            )
        finally:
            if store is not None:
                await store.aclose()
        return JSONResponse(result.body, result.status)

    app = Starlette(routes=[Route("/webhook", receive, methods=["POST"])])
    with serve_in_thread(app) as server:
        yield f"{server.http_url}/webhook?Token={secret}"
