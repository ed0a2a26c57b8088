"""The chaos verdict (pure): the simulator's truth against the mirror."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.chaos import truth
from tests.chaos.truth import (
    KNOWN_GAP,
    MISSING,
    OK,
    QUARANTINED,
    STALE,
    ConflictEntry,
    FaultRow,
    MewsEdit,
    MirrorRow,
    QuarantineEntry,
    StaffEdit,
)

CUSTOMERS = truth.SPECS["customers"]
DOCUMENTS = truth.SPECS["documents"]


def customer(i: int, updated: str = "2026-11-20T10:00:00Z", **fields: Any) -> dict[str, Any]:
    return {"Id": f"c{i}", "LastName": f"Guest {i}", "UpdatedUtc": updated, **fields}


def row(record: dict[str, Any]) -> MirrorRow:
    moment = datetime.fromisoformat(record["UpdatedUtc"].replace("Z", "+00:00"))
    return MirrorRow(record["Id"], moment, record)


def test_every_record_is_classified_once() -> None:
    old, new = customer(2), customer(2, "2026-11-21T10:00:00Z")
    changed_content = customer(3, Notes="other")
    truth_records = {
        "c1": customer(1),
        "c2": new,
        "c3": customer(3),
        "c4": customer(4),
        "c5": customer(5),
    }
    mirror = [row(customer(1)), row(old), row(changed_content), row(customer(5)), row(customer(5))]
    mirror.append(row(customer(9)))  # Mews has no such customer
    check = truth.compare_entity(CUSTOMERS, truth_records, mirror)
    assert check.statuses == {
        "c1": OK,
        "c2": STALE,
        "c3": STALE,
        "c4": MISSING,
        "c5": truth.DUPLICATED,
    }
    assert (check.lost, check.duplicated, check.stale) == (1, 2, 2)
    assert check.extra == ["c9"]


def test_a_quarantined_latest_version_is_accounted_for_an_older_one_is_not() -> None:
    poison = customer(1, "2026-11-21T10:00:00Z", LastName=None)
    older_poison = customer(2, "2026-11-19T10:00:00Z", LastName=None)
    truth_records = {"c1": poison, "c2": customer(2, "2026-11-21T10:00:00Z", LastName=None)}
    quarantine = [
        QuarantineEntry("customers", "c1", {**poison, "Notes": "NUL replaced"}, open=True),
        QuarantineEntry("customers", "c2", older_poison, open=True),
    ]
    mirror = [row(customer(1)), row(customer(2))]  # the good versions before the poison
    check = truth.compare_entity(CUSTOMERS, truth_records, mirror, quarantine)
    assert check.statuses == {"c1": QUARANTINED, "c2": STALE}


def test_records_without_a_clock_compare_by_content() -> None:
    document = {"Id": "d1", "CustomerId": "c1", "Number": "X1"}
    same = truth.compare_entity(DOCUMENTS, {"d1": document}, [MirrorRow("d1", None, document)])
    other = truth.compare_entity(
        DOCUMENTS, {"d1": document}, [MirrorRow("d1", None, {**document, "Number": "X2"})]
    )
    assert (same.statuses, other.statuses) == ({"d1": OK}, {"d1": STALE})


def test_a_known_gap_is_listed_apart_and_strict_counts_it_lost() -> None:
    world = {
        "customers": {"c1": customer(1, IsActive=False), "c2": customer(2, IsActive=True)},
        "documents": {
            "d1": {"Id": "d1", "CustomerId": "c1"},
            "d2": {"Id": "d2", "CustomerId": "c2"},
        },
    }
    mirror = {"customers": [row(world["customers"]["c1"]), row(world["customers"]["c2"])]}
    lenient = truth.compare(world, mirror)
    assert lenient.entities["documents"].statuses == {"d1": KNOWN_GAP, "d2": MISSING}
    assert lenient.known_gaps == {"identity documents of deleted or merged guests": 1}
    assert lenient.lost == 1
    assert truth.compare(world, mirror, known_gaps=()).lost == 2


def test_staff_edits_are_in_mews_or_in_the_conflict_log() -> None:
    customers = {
        "c1": {"Notes": "staff"},
        "c2": {"Occupation": "mews"},
        "c3": {"Email": "old@example.com"},
        "c4": {"Notes": "mews"},
    }
    staff = [
        StaffEdit("c1", "notes", "staff", "plain"),
        StaffEdit("c2", "occupation", "staff", "contested_mews"),
        StaffEdit("c3", "email", "taken@example.com", "refused"),
        StaffEdit("c4", "notes", "lost", "plain"),
    ]
    conflicts = [
        ConflictEntry("c2", "occupation", "staff", "mews", "mews_won"),
        ConflictEntry("c3", None, {"email": "taken@example.com"}, None, "refused_by_mews"),
    ]
    check = truth.check_edits(staff, [], customers, conflicts)
    assert (check.staff_in_mews, check.staff_in_conflict_log) == (1, 2)
    assert check.staff_unaccounted == [staff[3]]
    assert not check.accounted


def test_changes_made_in_mews_stay_unless_a_logged_staff_edit_overruled_them() -> None:
    customers = {"c1": {"Phone": "+1"}, "c2": {"Occupation": "staff"}, "c3": {"Phone": "+3"}}
    changes = [
        MewsEdit("c1", "phone", "+1"),
        MewsEdit("c2", "occupation", "mews"),
        MewsEdit("c3", "phone", "+2"),
    ]
    conflicts = [ConflictEntry("c2", "occupation", "staff", "mews", "local_won")]
    check = truth.check_edits([], changes, customers, conflicts, pending=1)
    assert (check.mews_kept, check.mews_overruled_logged) == (1, 1)
    assert check.mews_lost == [changes[2]]
    assert check.pending == 1


def test_a_mews_change_the_staff_edit_was_made_over_is_replaced_not_lost() -> None:
    """The chaos run with the real-time worker: Mews changed a guest's occupation, the worker
    mirrored it at once, and the staff edit a second later replaced it: the Mews value was the
    edit's base, so the merge rightly pushed it without a conflict. Only an edit made over an
    older value (the Mews change unseen) must have logged the Mews value."""
    customers = {"c1": {"Occupation": "staff-1"}, "c2": {"Occupation": "staff-2"}}
    changes = [MewsEdit("c1", "occupation", "mews-1"), MewsEdit("c2", "occupation", "mews-2")]
    staff = [
        StaffEdit("c1", "occupation", "staff-1", "contested_local", saw="mews-1"),
        StaffEdit("c2", "occupation", "staff-2", "contested_local", saw="before"),
    ]
    check = truth.check_edits(staff, changes, customers, [])
    assert check.mews_replaced_seen == 1
    assert check.mews_lost == [changes[1]]
    # an edit of another guest, or one Mews does not hold, replaced nothing
    other = [StaffEdit("c3", "occupation", "staff-1", "plain", saw="mews-1")]
    assert truth.check_edits(other, changes[:1], customers, []).mews_lost == changes[:1]
    unknown = [StaffEdit("c1", "occupation", "staff-1", "plain")]
    assert truth.check_edits(unknown, changes[:1], customers, []).mews_lost == changes[:1]


def test_exposure_counts_only_records_mews_still_has() -> None:
    comparison = truth.compare(
        {"customers": {"c1": customer(1)}}, {"customers": [row(customer(1))]}
    )
    outcome = truth.exposure_outcome(comparison, [("customers", "c1"), ("customers", "gone")])
    assert outcome == {OK: 1}


def test_the_table_lines_up() -> None:
    text = truth.render_table(
        [FaultRow("429 storm", 2, 40, 0, 0, 0), FaultRow("kill -9 sync poll", 1, 7, 1, 0, 0, "x")]
    )
    lines = text.splitlines()
    assert lines[0].startswith("fault ")
    assert "records checked" in lines[0]
    assert len({line.index("|") for line in lines if "|" in line}) == 1
