"""Isolating what a batch operation refuses: one bad element costs only itself.

:func:`isolate` runs an operation on a whole batch; when the operation refuses the batch for a
reason that lies in the elements (``refuses(exc)``), it splits the batch in halves and tries
each, down to single elements, which are returned with the error that refused them. Any other
error (a connection lost, a statement cancelled, Mews unavailable) is raised unchanged: the
batch is not at fault and the caller's retry rules apply. Pure control flow: the operation and
the predicate are handed in.

:func:`about_the_data` is the predicate the sync uses: the database refused the values (SQLSTATE
class 22 data exception, 23 integrity constraint, 54000 a value too large), or Mews refused a read
of records (a ``getAll``) with 400 or answered it with a body that cannot be read: the ids asked
for, or the records sent back, are at fault, and would be again. The same status from another
operation (``configuration/get``) says nothing about the records.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from shared.db.store import StoreError
from shared.mews.errors import MewsBadRequestError, MewsResponseError

T = TypeVar("T")
R = TypeVar("R")

DATA_SQLSTATE_CLASSES = ("22", "23")
DATA_SQLSTATES = ("54000",)


@dataclass
class Isolated(Generic[T, R]):
    """What :func:`isolate` found: a result per accepted part, each refused element with the
    error that refused it alone, and how many attempts it took."""

    results: list[R] = field(default_factory=list)
    accepted: list[T] = field(default_factory=list)
    refused: list[tuple[T, BaseException]] = field(default_factory=list)
    attempts: int = 0


async def isolate(
    items: Sequence[T],
    attempt: Callable[[list[T]], Awaitable[R]],
    refuses: Callable[[BaseException], bool],
    *,
    max_attempts: int | None = None,
) -> Isolated[T, R]:
    """Run ``attempt`` on all ``items``; bisect what it refuses until each refused element is
    alone. Elements keep their order within each attempt. After ``max_attempts`` attempts a
    refused part is not split further: its elements are refused together (a bound on the cost
    when everything is refused, e.g. requests against a rate budget)."""
    outcome: Isolated[T, R] = Isolated()
    pending = [list(items)] if items else []
    while pending:
        part = pending.pop()
        outcome.attempts += 1
        try:
            outcome.results.append(await attempt(part))
        except Exception as exc:
            if not refuses(exc):
                raise
            if len(part) == 1 or (max_attempts is not None and outcome.attempts >= max_attempts):
                outcome.refused.extend((item, exc) for item in part)
            else:
                middle = len(part) // 2
                pending += [part[middle:], part[:middle]]  # the first half is tried first
        else:
            outcome.accepted.extend(part)
    return outcome


def about_the_data(exc: BaseException) -> bool:
    """Whether ``exc`` refuses the values it was given (the same values would fail again),
    rather than the moment (a transient failure) or the set-up (credentials, a bug)."""
    if isinstance(exc, StoreError):
        code = exc.code or ""
        return code[:2] in DATA_SQLSTATE_CLASSES or code in DATA_SQLSTATES
    if isinstance(exc, MewsBadRequestError | MewsResponseError):
        return "/getAll" in exc.operation
    return False
