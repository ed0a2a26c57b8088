"""The three-way merge of staff edits with Mews (pure)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.sync.merge import FieldConflict, local_is_later, merge, same

BASED_ON = datetime(2026, 3, 1, 9, 0, 0, tzinfo=UTC)  # the Mews version the staff member saw
EDITED = datetime(2026, 3, 1, 10, 0, 0, 250000, tzinfo=UTC)  # the staff edit
MEWS_BEFORE = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)  # a Mews change before the staff edit
MEWS_AFTER = datetime(2026, 3, 1, 10, 30, tzinfo=UTC)  # ... and after it


def test_a_field_mews_did_not_change_is_pushed_although_mews_changed_another() -> None:
    # the observed loss: Mews changed the e-mail after the staff edit of the notes
    result = merge(
        {"notes": "Prefers a quiet room"},
        {"notes": ""},
        {"notes": "", "email": "new@example.com"},
        EDITED,
        MEWS_AFTER,
        base_updated_utc=BASED_ON,
    )
    assert result.push == {"notes": "Prefers a quiet room"}
    assert result.conflicts == []


def test_both_sides_changed_a_field_the_later_write_wins_and_it_is_a_conflict() -> None:
    changes, base, mews = {"notes": "staff"}, {"notes": "old"}, {"notes": "mews"}
    mews_later = merge(changes, base, mews, EDITED, MEWS_AFTER)
    assert mews_later.push == {}
    assert mews_later.conflicts == [FieldConflict("notes", "staff", "mews", "old", "mews_won")]
    assert [c.field for c in mews_later.mews_won] == ["notes"]
    staff_later = merge(changes, base, mews, EDITED, MEWS_BEFORE)
    assert staff_later.push == {"notes": "staff"}
    assert staff_later.conflicts == [FieldConflict("notes", "staff", "mews", "old", "local_won")]
    assert staff_later.mews_won == []


def test_mews_already_holding_the_staff_value_is_neither_pushed_nor_a_conflict() -> None:
    result = merge({"phone": "+420 1"}, {"phone": None}, {"phone": "+420 1"}, EDITED, MEWS_AFTER)
    assert result.push == {}
    assert result.conflicts == []
    assert result.unchanged == ["phone"]


def test_fields_are_decided_one_by_one() -> None:
    result = merge(
        {"notes": "staff note", "phone": "+420 2", "occupation": None, "email": "a@b.example"},
        {"notes": "", "phone": "+420 1", "occupation": "Chef", "email": None},
        {"notes": "", "phone": "+420 9", "occupation": "Chef", "email": "a@b.example"},
        EDITED,
        MEWS_AFTER,
    )
    assert result.push == {"notes": "staff note", "occupation": None}  # a clear is a value too
    assert [(c.field, c.resolution) for c in result.conflicts] == [("phone", "mews_won")]
    assert result.unchanged == ["email"]


def test_blank_and_null_are_one_value() -> None:
    assert same("", None)
    assert not same("", "x")
    # Mews holds "" where the staff member saw null: Mews did not change the field
    assert merge({"notes": "x"}, {"notes": None}, {"notes": ""}, EDITED, MEWS_AFTER).push == {
        "notes": "x"
    }
    # clearing a field Mews holds blank is nothing to do
    cleared = merge({"notes": None}, {"notes": "y"}, {"notes": ""}, EDITED, MEWS_AFTER)
    assert (cleared.push, cleared.conflicts) == ({}, [])


def test_a_mews_stamp_in_the_same_second_as_the_edit_wins() -> None:
    # Mews stamps whole seconds: 10:00:00 may be any moment up to 10:00:00.999
    same_second = EDITED.replace(microsecond=0)
    assert not local_is_later(EDITED, same_second)
    assert local_is_later(EDITED, same_second - timedelta(seconds=1))
    assert not local_is_later(EDITED, same_second + timedelta(seconds=1))
    result = merge({"notes": "staff"}, {"notes": "old"}, {"notes": "mews"}, EDITED, same_second)
    assert result.conflicts[0].resolution == "mews_won"


def test_a_field_without_a_recorded_base_falls_back_to_the_record_clock() -> None:
    changes, mews = {"phone": "+420 2"}, {"phone": "+420 1"}
    untouched = merge(changes, {}, mews, EDITED, BASED_ON, base_updated_utc=BASED_ON)
    assert untouched.push == {"phone": "+420 2"}
    assert untouched.conflicts == []
    moved = merge(changes, {}, mews, EDITED, MEWS_AFTER, base_updated_utc=BASED_ON)
    assert moved.push == {}
    assert moved.conflicts[0].resolution == "mews_won"
    unknown = merge(changes, {}, mews, EDITED, MEWS_BEFORE)
    assert unknown.push == {"phone": "+420 2"}
    assert unknown.conflicts[0].resolution == "local_won"


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        merge(
            {"notes": "x"}, {"notes": "y"}, {"notes": "z"}, EDITED.replace(tzinfo=None), MEWS_AFTER
        )


# -- properties ----------------------------------------------------------------------------

COLUMNS = ["first_name", "email", "phone", "notes", "occupation", "birth_date"]
CANDIDATES: list[Any] = [None, "", "a", "b", "c", "1990-05-04"]
values = st.sampled_from(CANDIDATES)
moments = st.datetimes(
    min_value=datetime(2026, 1, 1),  # noqa: DTZ001 - hypothesis wants naive bounds
    max_value=datetime(2026, 12, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
)


def differs_from(seen: Any) -> Callable[[Any], bool]:
    return lambda value: not same(value, seen)


@st.composite
def edits(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(changes, base, Mews now) over a random subset of columns; Mews holds every column."""
    edited = draw(st.lists(st.sampled_from(COLUMNS), min_size=1, unique=True))
    base = {c: draw(values) for c in edited}
    # drawn from the values that differ (no filter: a filter that rejects most draws makes
    # Hypothesis give up on a loaded machine)
    changes = {
        c: draw(st.sampled_from([v for v in CANDIDATES if differs_from(base[c])(v)]))
        for c in edited
    }
    mews = {c: draw(values) for c in COLUMNS}
    return changes, base, mews


@given(edits(), moments, moments)
def test_a_field_mews_did_not_change_is_always_pushed(
    edit: tuple[dict[str, Any], dict[str, Any], dict[str, Any]],
    edited_at: datetime,
    mews_updated_utc: datetime,
) -> None:
    changes, base, mews = edit
    result = merge(changes, base, mews, edited_at, mews_updated_utc)
    for column, value in changes.items():
        if same(mews[column], base[column]):
            assert result.push[column] == value
            assert column not in {c.field for c in result.conflicts}
    # whatever happens, a staff value is pushed, or Mews holds it, or Mews won a conflict on it
    for column in changes:
        outcomes = [
            column in result.push,
            column in result.unchanged,
            column in {c.field for c in result.mews_won},
        ]
        assert outcomes.count(True) == 1
    assert all(c.resolution in ("mews_won", "local_won") for c in result.conflicts)


@given(edits(), moments, moments)
def test_with_no_mews_change_everything_is_pushed_and_nothing_is_a_conflict(
    edit: tuple[dict[str, Any], dict[str, Any], dict[str, Any]],
    edited_at: datetime,
    mews_updated_utc: datetime,
) -> None:
    changes, base, mews = edit
    mews = {**mews, **base}  # Mews still holds every value the staff member saw
    result = merge(changes, base, mews, edited_at, mews_updated_utc)
    assert result.push == changes
    assert result.conflicts == []


@given(edits(), moments, moments)
def test_a_conflict_is_only_a_field_both_sides_changed_to_different_values(
    edit: tuple[dict[str, Any], dict[str, Any], dict[str, Any]],
    edited_at: datetime,
    mews_updated_utc: datetime,
) -> None:
    changes, base, mews = edit
    result = merge(changes, base, mews, edited_at, mews_updated_utc)
    for conflict in result.conflicts:
        assert not same(mews[conflict.field], base[conflict.field])
        assert not same(mews[conflict.field], changes[conflict.field])
        expected = "local_won" if local_is_later(edited_at, mews_updated_utc) else "mews_won"
        assert conflict.resolution == expected
        assert (conflict.field in result.push) == (expected == "local_won")
