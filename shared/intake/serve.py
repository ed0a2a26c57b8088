"""The webhook intake served by a process of its own (the demo): the store-and-acknowledge the
`mews_webhook` Cloud Function runs (:func:`~shared.intake.store.answer_webhook`), on a Starlette
app served from a background thread. The store is opened on the server's loop at the first
request that needs it and closed when the server stops. No access log: the URL carries the
webhook secret (``?Token=``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from shared.db.connect import open_store
from shared.db.store import Store
from shared.intake.store import answer_webhook
from shared.netserve import serve_in_thread
from shared.settings import Settings


def webhook_app(settings: Settings) -> Starlette:
    """``POST /?Token=…`` answered as the `mews_webhook` function answers it."""
    opened: list[Store] = []
    lock = asyncio.Lock()

    async def store() -> Store:
        async with lock:
            if not opened:
                opened.append(await open_store(settings))
            return opened[0]

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            for each in opened:
                await each.aclose()

    async def webhook(request: Request) -> JSONResponse:
        result = await answer_webhook(
            store, await request.body(), request.query_params.get("Token"), settings
        )
        return JSONResponse(result.body, status_code=result.status)

    return Starlette(routes=[Route("/", webhook, methods=["POST"])], lifespan=lifespan)


@contextmanager
def serving_webhook(settings: Settings) -> Iterator[str]:
    """Serve the webhook on a loopback port for the ``with`` block; yields its URL (without the
    ``?Token=``)."""
    with serve_in_thread(webhook_app(settings)) as server:
        yield f"{server.http_url}/"
