"""The three-way merge of staff edits with Mews (pure: no I/O).

A staff edit is pushed against the version the staff member edited, field by field:

- **base** — the value the staff member saw when editing the field (``guests.local_base``);
- **local** — the value they typed (``guests.local_changes``);
- **Mews** — the value Mews holds now (re-read just before pushing; there is no conditional
  write).

Per changed field:

1. Mews already holds the staff value → nothing to push, no conflict.
2. Mews still holds the base (Mews did not change the field) → push the staff value.
3. Mews changed the field too → last write wins between the staff edit time and Mews'
   ``UpdatedUtc``, and the field is a conflict, logged with both values.

So a staff edit is never lost to a Mews change of *another* field. Blank and null are one value
(``customers/update`` cannot tell them apart either). Mews stamps ``UpdatedUtc`` in whole
seconds, so times are compared by the second and a tie goes to Mews
(docs/MEWS.md#last-write-wins): a Mews stamp of 10:00:00 may stand for any moment up to
10:00:00.999.

A field with no recorded base (an edit queued before bases were kept, or by a writer that does
not record one) falls back to the record clock: if Mews' ``UpdatedUtc`` has not moved past the
version the edit was based on, Mews did not change the field; otherwise it is treated as changed
by both sides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Resolution = Literal["mews_won", "local_won"]


@dataclass(frozen=True)
class FieldConflict:
    """A field both sides changed to different values, and who won."""

    field: str
    local_value: Any
    mews_value: Any
    base_value: Any
    resolution: Resolution


@dataclass(frozen=True)
class MergeResult:
    """What to send to Mews (column → staff value) and the conflicts, both in column order."""

    push: dict[str, Any] = field(default_factory=dict)
    conflicts: list[FieldConflict] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)  # Mews already holds the staff value

    @property
    def mews_won(self) -> list[FieldConflict]:
        return [c for c in self.conflicts if c.resolution == "mews_won"]


def blank(value: Any) -> Any:
    """One spelling of "no value": ``""`` and ``None`` are the same to Mews."""
    return None if value == "" else value


def same(a: Any, b: Any) -> bool:
    return bool(blank(a) == blank(b))


def local_is_later(edited_at: datetime, mews_updated_utc: datetime) -> bool:
    """Last write wins, by the second (Mews' resolution); a tie goes to Mews."""
    return _second(edited_at) > _second(mews_updated_utc)


def _second(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return moment.astimezone(UTC).replace(microsecond=0)


def merge(
    changes: Mapping[str, Any],
    base: Mapping[str, Any],
    mews_current: Mapping[str, Any],
    edited_at: datetime,
    mews_updated_utc: datetime,
    *,
    base_updated_utc: datetime | None = None,
) -> MergeResult:
    """Merge staff ``changes`` (column → value) edited from ``base`` (column → value seen) at
    ``edited_at`` with Mews' current values (column → value, as of ``mews_updated_utc``).

    ``base_updated_utc`` is the Mews ``UpdatedUtc`` the edit was based on; it only decides
    fields that have no entry in ``base``. A column missing from ``mews_current`` counts as
    blank in Mews.
    """
    push: dict[str, Any] = {}
    conflicts: list[FieldConflict] = []
    unchanged: list[str] = []
    local_wins = local_is_later(edited_at, mews_updated_utc)
    for column in sorted(changes):
        local = changes[column]
        current = mews_current.get(column)
        if same(current, local):
            unchanged.append(column)
            continue
        if column in base:
            mews_changed = not same(current, base[column])
        else:
            mews_changed = base_updated_utc is None or mews_updated_utc > base_updated_utc
        if not mews_changed:
            push[column] = local
            continue
        conflicts.append(
            FieldConflict(
                field=column,
                local_value=local,
                mews_value=current,
                base_value=base.get(column),
                resolution="local_won" if local_wins else "mews_won",
            )
        )
        if local_wins:
            push[column] = local
    return MergeResult(push, conflicts, unchanged)
