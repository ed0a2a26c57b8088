"""Cursor paging (docs/MEWS.md#paging) as a pure state machine.

The first request has no cursor; each response's ``Cursor`` (the id of the page's last item)
is sent back for the next page. The walk ends on a null cursor or a page shorter than ``Count``;
204 is an empty page. A cursor that comes back twice would loop forever, so it raises.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_PAGE_SIZE = 1000


class PagingError(RuntimeError):
    """Mews returned a cursor it had already returned for this walk."""


@dataclass
class Pager:
    count: int = MAX_PAGE_SIZE
    cursor: str | None = None
    done: bool = False
    pages: int = 0
    _seen: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_PAGE_SIZE:
            raise ValueError(f"Count must be 1..{MAX_PAGE_SIZE}, got {self.count}")

    def limitation(self) -> dict[str, object]:
        """The ``Limitation`` of the next request."""
        if self.done:
            raise PagingError("the walk is finished")
        limitation: dict[str, object] = {"Count": self.count}
        if self.cursor is not None:
            limitation["Cursor"] = self.cursor
        return limitation

    def advance(self, items: int, cursor: str | None) -> None:
        """Record a page of ``items`` items that came back with ``cursor`` (204: 0, None)."""
        self.pages += 1
        if cursor is None or items < self.count:
            self.done = True
            self.cursor = cursor
            return
        if cursor in self._seen:
            raise PagingError(f"Mews repeated cursor {cursor} on page {self.pages}")
        self._seen.add(cursor)
        self.cursor = cursor
