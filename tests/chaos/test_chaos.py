"""The chaos scenario, short: every fault kind at least once against the real processes, then
the database must equal the simulator's truth.

The floor of its duration is the system's own clocks, not this test: a poll sees a change only
once Mews' clock is past it by the engine's lag (60 s). A run killed by kill -9 is seen dead at
once (its session lock is gone), so nothing waits for a heartbeat to go stale or a lease to
expire (``ChaosConfig.stale_seconds`` and ``lease_seconds``, passed to the workers as
``RUN_STALE_SECONDS`` and ``LEASE_SECONDS``, bound only hung workers). The longer soak is
``make chaos``.
"""

from __future__ import annotations

import sys

import pytest

from tests.chaos.harness import (
    KILL_BACKFILL,
    KILL_PUSH,
    NOT_INJECTABLE,
    STEADY_KINDS,
    ChaosConfig,
    run_chaos,
)

pytestmark = pytest.mark.slow


def test_nothing_is_lost_duplicated_or_stale_under_chaos() -> None:
    report = run_chaos(ChaosConfig(seed=1125, customers=300, minutes=0))
    text = report.text()
    sys.stdout.write(text + "\n")
    rows = {row.fault: row for row in report.rows}

    # every fault kind landed at least once (a killed push only in the soak, `make chaos`)
    for kind in (KILL_BACKFILL, *STEADY_KINDS):
        if kind != KILL_PUSH:
            assert rows[kind].injected >= 1, f"{kind} was not injected\n{text}"
            assert rows[kind].checked >= 1, f"{kind} touched no record\n{text}"
    # and what cannot be injected says so in the table
    for kind, reason in NOT_INJECTABLE.items():
        assert rows[kind].note == reason

    comparison = report.comparison
    assert comparison.checked >= 300 * 2, text
    assert (comparison.lost, comparison.duplicated, comparison.stale) == (0, 0, 0), text
    injected, quarantined, healed, resolved = report.poison
    assert injected >= 5, text
    assert quarantined == injected, f"a poison record was not quarantined\n{text}"
    assert comparison.quarantined >= injected - healed, text
    assert resolved == healed, f"a healed record's quarantine entry is still open\n{text}"
    assert report.edits.staff >= 5, text
    assert report.edits.accounted, text
    assert report.duplicate_conflicts == 0, text
    assert report.running == 0, text
    assert not report.hung, text
    assert not report.stop_problems, text  # each SIGTERM finished what the worker held
