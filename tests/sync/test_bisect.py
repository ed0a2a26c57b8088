"""Isolating refused elements: a fake upsert that refuses any part holding a bad element."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.db.store import StoreError
from shared.mews.errors import (
    MewsAuthError,
    MewsBadRequestError,
    MewsError,
    MewsNetworkError,
    MewsResponseError,
    MewsServerError,
    MewsTimeoutError,
)
from shared.sync.bisect import about_the_data, isolate

pytestmark = pytest.mark.anyio


class FakeUpsert:
    """Writes a part unless it holds a bad element; then refuses the whole part, as a database
    statement does, naming the first bad element."""

    def __init__(self, bad: set[int], failure: Callable[[], BaseException] | None = None) -> None:
        self.bad = bad
        self.failure = failure
        self.parts: list[list[int]] = []
        self.written: list[int] = []

    async def __call__(self, part: list[int]) -> int:
        self.parts.append(part)
        if self.failure is not None:
            raise self.failure()
        refused = [i for i in part if i in self.bad]
        if refused:
            raise StoreError(
                "upsert_guests", "22P02", f"invalid input syntax for type uuid: {refused[0]}"
            )
        self.written.extend(part)
        return len(part)


async def test_a_batch_without_a_bad_element_takes_one_attempt() -> None:
    upsert = FakeUpsert(bad=set())
    outcome = await isolate(list(range(1000)), upsert, about_the_data)
    assert upsert.parts == [list(range(1000))]
    assert (outcome.results, outcome.refused, outcome.attempts) == ([1000], [], 1)
    assert outcome.accepted == list(range(1000))


async def test_nothing_to_do_is_no_attempt() -> None:
    upsert = FakeUpsert(bad=set())
    outcome = await isolate([], upsert, about_the_data)
    assert (upsert.parts, outcome.attempts, outcome.results) == ([], 0, [])


async def test_one_bad_element_costs_only_itself_in_a_logarithmic_number_of_attempts() -> None:
    upsert = FakeUpsert(bad={617})
    outcome = await isolate(list(range(1000)), upsert, about_the_data)
    assert [(item, str(exc)) for item, exc in outcome.refused] == [
        (617, "upsert_guests: invalid input syntax for type uuid: 617 [22P02]")
    ]
    assert sorted(upsert.written) == [i for i in range(1000) if i != 617]
    assert outcome.accepted == [i for i in range(1000) if i != 617]  # order kept
    assert outcome.attempts <= 2 * math.ceil(math.log2(1000)) + 1


async def test_each_bad_element_is_refused_alone_with_its_own_error() -> None:
    upsert = FakeUpsert(bad={0, 1, 500, 999})
    outcome = await isolate(list(range(1000)), upsert, about_the_data)
    assert [item for item, _ in outcome.refused] == [0, 1, 500, 999]
    assert all(str(exc).endswith(f": {item} [22P02]") for item, exc in outcome.refused)
    assert sum(outcome.results) == 996


@given(
    st.lists(st.integers(0, 50), max_size=60, unique=True),
    st.sets(st.integers(0, 50), max_size=10),
)
async def test_every_element_is_either_written_once_or_refused_alone(
    items: list[int], bad: set[int]
) -> None:
    upsert = FakeUpsert(bad=bad)
    outcome = await isolate(items, upsert, about_the_data)
    assert sorted(upsert.written) == sorted(i for i in items if i not in bad)
    assert [item for item, _ in outcome.refused] == [i for i in items if i in bad]
    assert outcome.accepted == [i for i in items if i not in bad]


@pytest.mark.parametrize("error", [MewsServerError, MewsNetworkError, MewsTimeoutError])
async def test_a_failure_that_is_not_about_the_data_is_raised_unchanged(
    error: type[MewsError],
) -> None:
    upsert = FakeUpsert(bad={3}, failure=lambda: error("unavailable", operation="customers/getAll"))
    with pytest.raises(error):
        await isolate(list(range(10)), upsert, about_the_data)
    assert len(upsert.parts) == 1


async def test_a_transient_failure_while_bisecting_is_raised_too() -> None:
    calls = 0

    async def flaky(part: list[int]) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise StoreError("upsert_guests", "23503", "violates foreign key constraint")
        raise StoreError("upsert_guests", "57014", "canceling statement due to statement timeout")

    with pytest.raises(StoreError, match="57014"):
        await isolate(list(range(10)), flaky, about_the_data)
    assert calls == 2


async def test_past_its_attempt_budget_a_refused_part_is_refused_whole() -> None:
    upsert = FakeUpsert(bad=set(range(64)))
    outcome = await isolate(list(range(64)), upsert, about_the_data, max_attempts=5)
    assert sorted(item for item, _ in outcome.refused) == list(range(64))
    # the budget stops splitting; the parts already queued are tried once each
    assert outcome.attempts <= 5 + math.ceil(math.log2(64))


@pytest.mark.parametrize(
    ("code", "about_data"),
    [
        ("22P02", True),  # invalid text representation (a uuid that is not one)
        ("22P05", True),  # untranslatable character (U+0000 in jsonb)
        ("22003", True),  # numeric value out of range
        ("23503", True),  # foreign key violation
        ("23505", True),  # unique violation
        ("54000", True),  # a value too large for an index
        ("57014", False),  # statement cancelled
        ("40001", False),  # serialization failure
        ("08006", False),  # connection failure
        ("42883", False),  # undefined function: a bug, not the data
        ("PGRST202", False),
        (None, False),  # no answer at all
    ],
)
def test_which_database_errors_are_about_the_data(code: str | None, about_data: bool) -> None:
    assert about_the_data(StoreError("upsert_guests", code, "x")) is about_data


def test_which_mews_errors_are_about_the_data() -> None:
    def error(kind: type[MewsError], operation: str = "customers/getAll") -> MewsError:
        return kind("x", operation=operation)

    assert about_the_data(error(MewsBadRequestError))
    assert about_the_data(error(MewsBadRequestError, "reservations/getAll/2023-06-06"))
    assert about_the_data(error(MewsResponseError))
    assert not about_the_data(error(MewsBadRequestError, "configuration/get"))  # not the records
    assert not about_the_data(error(MewsServerError))
    assert not about_the_data(error(MewsTimeoutError))
    assert not about_the_data(error(MewsAuthError))
    assert not about_the_data(RuntimeError("a bug"))
