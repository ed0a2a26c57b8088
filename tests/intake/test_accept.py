"""accept_webhook's answers with a stand-in store: what the database says is passed through,
and nothing is stored or acknowledged when it must not be."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from cryptography.fernet import Fernet

from shared.db.store import StoreError
from shared.intake.store import MISSING_KEY, accept_webhook
from shared.settings import INVALID_ENCRYPTION_KEY_MESSAGE
from tests.support.fixtures import load

SECRET = "hook-secret"
KEY = Fernet.generate_key().decode()


class FakeStore:
    """Answers inbox_add with ``answer``; records every call."""

    def __init__(self, answer: dict[str, Any] | None = None, fail: str | None = None) -> None:
        self.answer = answer or {"id": 1, "status": "pending", "error": None, "duplicate": False}
        self.fail = fail
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.opened = 0

    async def call(self, fn: str, **args: Any) -> Any:
        self.calls.append((fn, args))
        if fn == self.fail:
            raise StoreError(fn, "57P01", "terminating connection: host db.internal:5432")
        if fn == "connection_apply":
            return {"status": "active"}
        return self.answer

    def opener(self) -> Callable[[], Awaitable[Any]]:
        async def open_store() -> Any:
            self.opened += 1
            return self

        return open_store


async def post(store: FakeStore, body: Any, *, key: str | None = KEY, token: str = SECRET) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await accept_webhook(store.opener(), raw, token, secret=SECRET, encryption_key=key)


@pytest.mark.anyio
async def test_a_body_the_database_rejects_is_answered_400_with_its_error_never_202() -> None:
    store = FakeStore({"id": 9, "status": "rejected", "error": "body is not JSON: unsupported"})
    result = await post(store, load("webhook_integration_disabled"))
    assert (result.status, result.body) == (
        400,
        {"error": "body is not JSON: unsupported", "stored": 9},
    )
    assert [fn for fn, _ in store.calls] == ["inbox_add"]  # the connection is not touched


@pytest.mark.anyio
async def test_a_duplicate_is_acknowledged_with_the_id_of_the_stored_copy() -> None:
    store = FakeStore({"id": 4, "status": "pending", "error": None, "duplicate": True})
    result = await post(store, load("webhook_general"))
    assert (result.status, result.body) == (202, {"stored": 4, "duplicate": True})


@pytest.mark.anyio
async def test_a_duplicate_of_a_rejected_body_is_400_again() -> None:
    store = FakeStore({"id": 4, "status": "rejected", "error": "bad", "duplicate": True})
    assert (await post(store, load("webhook_general"))).status == 400


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["webhook_integration", "webhook_integration_api_key_created"])
async def test_a_token_without_an_encryption_key_is_503_and_nothing_is_stored(name: str) -> None:
    store = FakeStore()
    result = await post(store, load(name), key=None)
    assert (result.status, result.body) == (503, {"error": MISSING_KEY})
    assert store.opened == 0


@pytest.mark.anyio
async def test_a_key_fernet_refuses_is_a_500_naming_the_setting_and_nothing_is_stored() -> None:
    store = FakeStore()
    result = await post(store, load("webhook_integration"), key="not-a-fernet-key")
    assert (result.status, result.body) == (500, {"error": INVALID_ENCRYPTION_KEY_MESSAGE})
    assert store.opened == 0


@pytest.mark.anyio
async def test_an_integration_webhook_without_a_token_needs_no_key() -> None:
    store = FakeStore()
    assert (await post(store, load("webhook_integration_disabled"), key=None)).status == 202


@pytest.mark.anyio
async def test_the_store_receives_the_token_only_encrypted() -> None:
    store = FakeStore()
    body = load("webhook_integration")
    assert (await post(store, body)).status == 202
    token = body["Data"]["AccessToken"]
    assert token not in repr(store.calls)
    [(_, apply)] = [call for call in store.calls if call[0] == "connection_apply"]
    assert Fernet(KEY.encode()).decrypt(apply["p_token_encrypted"].encode()).decode() == token


@pytest.mark.anyio
@pytest.mark.parametrize("failing", ["inbox_add", "connection_apply"])
async def test_a_failing_database_is_503_naming_only_the_call(failing: str) -> None:
    result = await post(FakeStore(fail=failing), load("webhook_integration"))
    assert result.status == 503
    assert result.body == {
        "error": f"database unavailable ({failing} failed, SQLSTATE 57P01); Mews will retry"
    }


@pytest.mark.anyio
async def test_a_database_that_cannot_be_opened_is_503() -> None:
    async def unreachable() -> Any:
        raise StoreError("connect", None, "connection to postgresql://u:pw@db.internal failed")

    result = await accept_webhook(unreachable, b"{}", SECRET, secret=SECRET)
    assert result.status == 503
    assert "db.internal" not in json.dumps(result.body)


@pytest.mark.anyio
async def test_a_wrong_token_never_opens_the_store() -> None:
    store = FakeStore()
    assert (await post(store, load("webhook_general"), token="wrong")).status == 401
    assert store.opened == 0
