"""A 401 pauses the token for every process until it changes; other tokens carry on."""

from __future__ import annotations

import httpx
import pytest

from shared.db.store import Store
from shared.mews.client import MewsClient
from shared.mews.errors import MewsAuthError
from shared.mews.ratelimit import PostgresRateLimiter, token_key
from shared.settings import DEMO_ACCESS_TOKEN, load_settings
from shared.simulator.running import running_simulator
from shared.simulator.server import SimulatorConfig

pytestmark = pytest.mark.anyio
REFUSED = "0FA4EACCE5500000000000000000C0DE-000000000000000000000000000DEAD"


async def test_a_refused_token_pauses_its_jobs_and_no_other(store: Store) -> None:
    with running_simulator(SimulatorConfig(customers=5, rate_limit=None)) as sim:
        async with httpx.AsyncClient() as http:

            def client(token: str) -> MewsClient:
                settings = load_settings(mews_platform_url=sim.url, mews_access_token=token)
                return MewsClient.from_settings(settings, http, PostgresRateLimiter(store, token))

            refused = client(REFUSED)
            with pytest.raises(MewsAuthError, match="401"):
                await refused.configuration()

            def refusals() -> int:
                return int(sim.stats()["statuses"].get("401", 0))

            assert refusals() == 1
            # every later call on that token, from any process, stops before Mews
            with pytest.raises(MewsAuthError, match="jobs are paused until the token changes"):
                await client(REFUSED).configuration()
            assert refusals() == 1
            # another token is not affected
            config = await client(DEMO_ACCESS_TOKEN).configuration()
            assert config.enterprise.id
            # an operator who fixed the integration in Mews clears it
            cleared = await store.call("token_authorized", p_key=token_key(REFUSED))
            assert cleared == {"cleared": True}
            with pytest.raises(MewsAuthError, match="401"):
                await client(REFUSED).configuration()
            assert refusals() == 2
