"""A Mews client for respx-mocked tests: invented tokens, no rate limit, one quick retry; and
the JSON bodies a mocked route received (the exact request shapes)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import respx
from pydantic import SecretStr

from shared.mews.client import MewsClient, RetryPolicy
from shared.mews.ratelimit import UnlimitedRateLimiter

PLATFORM_URL = "https://mews.test"
TOKENS = {"ClientToken": "client-token", "AccessToken": "access-token", "Client": "guesthub test"}


def mocked_client(http: httpx.AsyncClient) -> MewsClient:
    return MewsClient(
        http,
        platform_url=PLATFORM_URL,
        client_token=SecretStr(TOKENS["ClientToken"]),
        access_token=SecretStr(TOKENS["AccessToken"]),
        client_name=TOKENS["Client"],
        limiter=UnlimitedRateLimiter(),
        retry=RetryPolicy(max_attempts=2, base_delay=0, max_delay=0),
    )


def bodies(route: respx.Route) -> list[dict[str, Any]]:
    return [json.loads(call.request.content) for call in route.calls]
