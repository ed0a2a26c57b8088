"""The shared rate limit on a real Postgres: separate connections share one budget."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from shared.db.store import PsycopgTransport, Store
from shared.mews.ratelimit import PostgresRateLimiter, Slot, budget, token_key

pytestmark = pytest.mark.anyio
TOKEN = "C66EF7B239D24632943D115EDE9CB810-EA00F8FD8294692C940F6B5A8F9453D"


class RefusedError(Exception):
    def __init__(self, wait: float) -> None:
        self.wait = wait


async def refuse(seconds: float) -> None:
    raise RefusedError(seconds)


@pytest.fixture
async def stores(database_url: str) -> AsyncIterator[list[Store]]:
    """Three stores with their own pools: three 'processes'."""
    opened = [Store(await PsycopgTransport.connect(database_url, max_size=4)) for _ in range(3)]
    yield opened
    for store in opened:
        await store.aclose()


def test_budget_keeps_the_safety_margin() -> None:
    assert budget(200, 0.05) == 190
    assert budget(200, 0.0) == 200
    assert budget(1, 0.5) == 1


def test_the_key_is_a_hash_not_the_token() -> None:
    key = token_key(TOKEN)
    assert TOKEN not in key
    assert key == token_key(TOKEN)
    assert key != token_key(TOKEN[:-1] + "0")


async def test_concurrent_callers_on_many_connections_get_exactly_the_budget(
    stores: list[Store],
) -> None:
    limiters = [
        PostgresRateLimiter(
            s, TOKEN, limit=10, window_seconds=60, safety_margin=0, guard_seconds=0, sleep=refuse
        )
        for s in stores
    ]
    results = await asyncio.gather(
        *(limiters[i % 3].acquire() for i in range(25)), return_exceptions=True
    )
    granted = [r for r in results if r == Slot()]  # granted; trusted: no probe, no ticket
    refused = [r for r in results if isinstance(r, RefusedError)]
    assert len(granted) == 10
    assert len(refused) == 15
    assert all(55 < r.wait <= 60 for r in refused)


async def test_the_window_slides_and_no_window_holds_more_than_the_budget(
    stores: list[Store], database_url: str
) -> None:
    """Judged on the database's clock: when each slot was granted (a copy of every hit, kept
    by a trigger; the limiter deletes hits once out of the window). The times a caller sees
    are later by its scheduling, unevenly on a loaded machine, so they cannot show the window."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("create table public.granted (at timestamptz not null)")
        conn.execute("grant insert on public.granted to service_role")  # the limiter's role
        conn.execute(
            "create function public.granted_copy() returns trigger language plpgsql as"
            " $$ begin insert into public.granted values (new.at); return new; end $$"
        )
        conn.execute(
            "create trigger granted_copy after insert on public.rate_limit_hits"
            " for each row execute function public.granted_copy()"
        )
    limiters = [
        PostgresRateLimiter(s, TOKEN, limit=5, window_seconds=1, safety_margin=0, guard_seconds=0)
        for s in stores
    ]
    await asyncio.gather(*(limiters[i % 3].acquire() for i in range(15)))
    with psycopg.connect(database_url) as conn:
        times = [row[0] for row in conn.execute("select at from public.granted order by at")]
    assert len(times) == 15
    # three windows' worth took at least two full windows, and no window held more than five
    assert (times[-1] - times[0]).total_seconds() >= 2.0
    for first, sixth in zip(times, times[5:], strict=False):
        assert (sixth - first).total_seconds() >= 1.0


async def test_a_pause_stops_every_process_on_the_token(stores: list[Store]) -> None:
    first = PostgresRateLimiter(stores[0], TOKEN, limit=100, window_seconds=30)
    other = PostgresRateLimiter(stores[1], TOKEN, limit=100, window_seconds=30, sleep=refuse)
    unrelated = PostgresRateLimiter(stores[2], "another-token", limit=100, window_seconds=30)
    await first.pause(20)
    with pytest.raises(RefusedError) as caught:
        await other.acquire()
    assert 19 < caught.value.wait <= 20
    await unrelated.acquire()  # other tokens are not paused


async def test_a_shorter_pause_never_shortens_a_longer_one(stores: list[Store]) -> None:
    limiter = PostgresRateLimiter(stores[0], TOKEN, sleep=refuse)
    await limiter.pause(30)
    await limiter.pause(1)
    with pytest.raises(RefusedError) as caught:
        await limiter.acquire()
    assert caught.value.wait > 25


# -- a 429 blocks the token; its limit adapts -----------------------------------------------


def state(database_url: str) -> dict[str, Any]:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        row = conn.execute(
            "select adapted_limit, confirmed, probe_due, probe_until is not null as probe_out,"
            " pauses from public.rate_limit_state where key = %s",
            (token_key(TOKEN),),
        ).fetchone()
    assert row is not None
    return row


def sql(database_url: str, query: str, *args: Any) -> Any:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(query, args).fetchone()
    assert row is not None
    return row[0]


def test_the_limit_falls_to_90_percent_of_what_was_accepted_and_never_below_a_tenth(
    database_url: str,
) -> None:
    decreased = "select app.rate_limit_decreased(%s, %s, %s)"
    assert sql(database_url, decreased, 190, 50, 200) == 45  # Mews accepted 50: 90 % of them
    assert sql(database_url, decreased, 30, 50, 200) == 27  # never above 90 % of the limit in force
    assert sql(database_url, decreased, 190, 0, 200) == 20  # a storm let nothing through: a tenth
    assert sql(database_url, decreased, 190, -3, 200) == 20
    assert sql(database_url, decreased, 5, 0, 5) == 1  # a ceiling of 5: at least one


def test_the_limit_recovers_by_5_percent_of_the_ceiling_per_quiet_window(
    database_url: str,
) -> None:
    limit: int | None = 40
    seen = []
    while limit is not None:  # a hand-built run of quiet windows, from a 429 to the ceiling
        limit = sql(database_url, "select app.rate_limit_increased(%s, 190)", limit)
        seen.append(limit)
    assert seen == [50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160, 170, 180, None]
    assert sql(database_url, "select app.rate_limit_increased(%s, %s)", 1, 10) == 2


async def test_a_429_blocks_every_process_then_one_probe_goes_alone(
    stores: list[Store], database_url: str
) -> None:
    first = PostgresRateLimiter(stores[0], TOKEN, limit=20, window_seconds=60, safety_margin=0)
    other = PostgresRateLimiter(
        stores[1], TOKEN, limit=20, window_seconds=60, safety_margin=0, sleep=refuse
    )
    for _ in range(11):
        assert await first.acquire() == Slot()  # trusted up to the limit: no probe, no ticket
    await first.pause(0.2)  # the 11th got a 429: Mews accepted 10
    assert state(database_url) | {"pauses": 0} == {
        "adapted_limit": 9,
        "confirmed": 9,
        "probe_due": True,
        "probe_out": False,
        "pauses": 0,
    }
    with pytest.raises(RefusedError) as caught:
        await other.acquire()  # blocked: another process on the token
    assert 0 < caught.value.wait <= 0.2
    # the window holds 11 slots of a limit of 8 for a minute; a limiter whose window is tiny
    # sees none of them (as the first would a minute later) and waits only for the block
    quick = PostgresRateLimiter(stores[2], TOKEN, limit=20, window_seconds=0.01, guard_seconds=0)
    probe = await quick.acquire()  # the probe, once the block has passed
    assert probe.probe
    assert probe.ticket is not None
    blocked = PostgresRateLimiter(
        stores[1], TOKEN, limit=20, window_seconds=0.01, guard_seconds=0, sleep=refuse
    )
    with pytest.raises(RefusedError) as caught:
        await blocked.acquire()  # the others wait for the probe's answer
    assert 0 < caught.value.wait <= 0.1
    await quick.answered(probe)
    assert state(database_url)["probe_due"] is False
    slot = await blocked.acquire()  # below confirmed: no probe, no waiting, but tracked
    assert not slot.probe
    assert slot.ticket is not None


async def test_429s_of_one_congestion_event_do_not_compound(
    stores: list[Store], database_url: str
) -> None:
    limiter = PostgresRateLimiter(stores[0], TOKEN, limit=100, window_seconds=60, safety_margin=0)
    for _ in range(24):
        await limiter.acquire()
    # the first 429, then three requests that were already on the wire get theirs
    for _ in range(4):
        await limiter.pause(5)
    assert state(database_url)["adapted_limit"] == 18  # 90 % of the 20 accepted, not 0.9⁴
    assert state(database_url)["pauses"] == 4


async def test_a_probe_waits_until_nothing_of_the_token_is_on_the_wire(
    stores: list[Store], database_url: str
) -> None:
    one = PostgresRateLimiter(stores[0], TOKEN, limit=20, window_seconds=60, safety_margin=0)
    other = PostgresRateLimiter(
        stores[1], TOKEN, limit=20, window_seconds=60, safety_margin=0, sleep=refuse
    )
    with psycopg.connect(database_url) as conn:  # a token that met a 429: 3 known to pass
        conn.execute(
            "insert into public.rate_limit_state (key, adapted_limit, confirmed) values (%s, 10, 3)",
            (token_key(TOKEN),),
        )
    slots = [await one.acquire() for _ in range(3)]
    assert [s.probe for s in slots] == [False] * 3  # below confirmed: together
    assert all(s.ticket is not None for s in slots)  # but tracked: the database knows the wire
    await one.answered(slots[0])
    await one.answered(slots[1])
    with pytest.raises(RefusedError) as caught:
        await other.acquire()  # the 4th would be a probe: it waits for the one on the wire
    assert caught.value.wait == 0.1  # it asks again soon
    await one.answered(slots[2])
    probe = await other.acquire()
    assert probe.probe
    with pytest.raises(RefusedError):
        await other.acquire()  # nobody goes beside a probe
    await other.answered(probe)
    assert state(database_url)["confirmed"] == 3  # a probe that passed proves no level


async def test_a_lowered_limit_rises_a_step_only_when_it_holds_a_request_back_after_a_quiet_window(
    stores: list[Store], database_url: str
) -> None:
    limiter = PostgresRateLimiter(
        stores[0], TOKEN, limit=20, window_seconds=1, safety_margin=0, guard_seconds=0
    )
    for _ in range(5):
        await limiter.acquire()
    await limiter.pause(0)  # Mews accepted 4: the limit is 3
    assert state(database_url)["adapted_limit"] == 3
    # idle for two windows (by the database's clock): no request was held back, the limit stays
    idle = "select extract(epoch from adapted_at + interval '2 s' - now()) from public.rate_limit_state"
    await asyncio.sleep(max(0.0, float(sql(database_url, idle))))
    assert float(sql(database_url, idle)) <= 0
    assert state(database_url)["adapted_limit"] == 3
    while state(database_url)["adapted_limit"] == 3:  # busy: the 4th in a window is held back
        slot = await limiter.acquire()
        await limiter.answered(slot)
    assert state(database_url)["adapted_limit"] == 4  # one step: 5 % of the ceiling of 20
