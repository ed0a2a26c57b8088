"""Time windows for ``CreatedUtc``/``UpdatedUtc`` filters, as pure functions.

Mews filters are half-open (``StartUtc ≤ t < EndUtc``) and at most "3 months" long; we stay at
31 days. Consecutive windows are chained (``next.start == prev.end``) so nothing falls between
them; a poll starts a little before the last high-water mark (the overlap) because records can
commit late on Mews' side, and the guarded upsert makes re-reading harmless.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MAX_WINDOW = timedelta(days=31)


@dataclass(frozen=True, order=True)
class Window:
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window bounds must be timezone-aware UTC datetimes")
        if self.end < self.start:
            raise ValueError(f"window ends before it starts: {self.start} > {self.end}")

    def filter(self) -> dict[str, str]:
        """The Mews time-interval filter object."""
        return {"StartUtc": format_utc(self.start), "EndUtc": format_utc(self.end)}

    def split(self) -> tuple[Window, Window]:
        """Two halves (for a 408: ask for less)."""
        middle = self.start + (self.end - self.start) / 2
        middle = middle.replace(microsecond=0)
        if middle <= self.start:
            raise ValueError("window too small to split")
        return Window(self.start, middle), Window(middle, self.end)


def format_utc(moment: datetime) -> str:
    """Mews' canonical form: ``YYYY-MM-DDThh:mm:ssZ`` (fractions kept when present)."""
    text = moment.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def plan_windows(
    start: datetime, end: datetime, *, size: timedelta = MAX_WINDOW, newest_first: bool = False
) -> list[Window]:
    """Chained half-open windows covering ``[start, end)``, none longer than ``size``."""
    if size <= timedelta(0) or size > MAX_WINDOW:
        raise ValueError(f"window size must be in (0, {MAX_WINDOW}]")
    if end <= start:
        return []
    windows = []
    cursor = start
    while cursor < end:
        upper = min(cursor + size, end)
        windows.append(Window(cursor, upper))
        cursor = upper
    return windows[::-1] if newest_first else windows


def poll_windows(
    high_water: datetime,
    now: datetime,
    *,
    overlap: timedelta = timedelta(minutes=5),
    lag: timedelta = timedelta(minutes=1),
    size: timedelta = MAX_WINDOW,
) -> list[Window]:
    """Windows for an incremental poll: from the high-water mark minus the overlap to Mews'
    ``now`` minus a safety lag (records still committing on Mews' side)."""
    return plan_windows(high_water - overlap, now - lag, size=size)
