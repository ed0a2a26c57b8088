"""Paging and windows: pure functions, tested exhaustively."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.mews.paging import Pager, PagingError
from shared.mews.windows import MAX_WINDOW, Window, format_utc, plan_windows, poll_windows

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_first_request_has_no_cursor_then_sends_the_returned_one() -> None:
    pager = Pager(count=2)
    assert pager.limitation() == {"Count": 2}
    pager.advance(2, "b")
    assert pager.limitation() == {"Count": 2, "Cursor": "b"}
    assert not pager.done


def test_a_short_page_ends_the_walk() -> None:
    pager = Pager(count=3)
    pager.advance(2, "x")
    assert pager.done


def test_a_null_cursor_ends_the_walk() -> None:
    pager = Pager(count=3)
    pager.advance(3, None)
    assert pager.done


def test_a_204_is_an_empty_last_page() -> None:
    pager = Pager()
    pager.advance(0, None)
    assert pager.done
    with pytest.raises(PagingError):
        pager.limitation()


def test_a_repeated_cursor_raises() -> None:
    pager = Pager(count=1)
    pager.advance(1, "a")
    pager.advance(1, "b")
    with pytest.raises(PagingError, match="repeated cursor a"):
        pager.advance(1, "a")


@pytest.mark.parametrize("count", [0, 1001, -1])
def test_count_is_bounded(count: int) -> None:
    with pytest.raises(ValueError, match="Count"):
        Pager(count=count)


def test_windows_are_chained_half_open_and_short() -> None:
    windows = plan_windows(T0, T0 + timedelta(days=100))
    assert windows[0].start == T0
    assert windows[-1].end == T0 + timedelta(days=100)
    for before, after in itertools.pairwise(windows):
        assert before.end == after.start
    assert all(w.end - w.start <= MAX_WINDOW for w in windows)


def test_newest_first_reverses_the_order() -> None:
    windows = plan_windows(T0, T0 + timedelta(days=40), newest_first=True)
    assert windows[0].end == T0 + timedelta(days=40)


def test_windows_longer_than_the_maximum_are_refused() -> None:
    with pytest.raises(ValueError, match="window size"):
        plan_windows(T0, T0 + timedelta(days=90), size=timedelta(days=60))


def test_empty_range_gives_no_window() -> None:
    assert plan_windows(T0, T0) == []


def test_poll_windows_overlap_the_high_water_mark_and_lag_behind_now() -> None:
    windows = poll_windows(
        T0, T0 + timedelta(hours=1), overlap=timedelta(minutes=5), lag=timedelta(minutes=1)
    )
    assert windows == [Window(T0 - timedelta(minutes=5), T0 + timedelta(minutes=59))]


def test_filter_format_is_mews_canonical() -> None:
    assert Window(T0, T0 + timedelta(days=1)).filter() == {
        "StartUtc": "2026-01-01T00:00:00Z",
        "EndUtc": "2026-01-02T00:00:00Z",
    }
    assert format_utc(T0.replace(microsecond=117000)) == "2026-01-01T00:00:00.117000Z"


def test_split_halves_a_window() -> None:
    first, second = Window(T0, T0 + timedelta(days=2)).split()
    assert first.end == second.start == T0 + timedelta(days=1)


@given(
    start=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1)),  # noqa: DTZ001 - naive bounds, as hypothesis requires
    length=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=2000)),
    size_days=st.integers(min_value=1, max_value=31),
)
def test_windows_tile_the_range_exactly(start: datetime, length: timedelta, size_days: int) -> None:
    start = start.replace(tzinfo=UTC)
    windows = plan_windows(start, start + length, size=timedelta(days=size_days))
    if length == timedelta(0):
        assert windows == []
        return
    assert windows[0].start == start
    assert windows[-1].end == start + length
    assert sum((w.end - w.start for w in windows), timedelta(0)) == length
