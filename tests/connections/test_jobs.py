"""The Mews jobs over a connection are generic over the entity specs: an unknown entity is an
error when the job is made, before any connection is claimed."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

from shared.connections import jobs
from shared.connections.fleet import ConnectionWork
from shared.sync.entities import UnknownEntityError

JOBS: dict[str, Callable[[Iterable[str] | None], ConnectionWork]] = {
    "poll": jobs.poll,
    "backfill": jobs.backfill,
    "reconcile": jobs.reconcile,
}


@pytest.mark.parametrize("make", JOBS.values(), ids=JOBS.keys())
def test_a_job_of_an_unknown_entity_is_refused_when_made(
    make: Callable[[Iterable[str] | None], ConnectionWork],
) -> None:
    """``jobs.poll(["bookings"])`` (and backfill, reconcile) raise; known names make a job."""
    with pytest.raises(UnknownEntityError, match="bookings"):
        make(["customers", "bookings"])
    assert callable(make(["customers"]))
    assert callable(make(None))
