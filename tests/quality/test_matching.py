"""The duplicate matcher's comparisons, weights and blocking (pure: no database)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from shared.quality import matching
from shared.quality.matching import (
    Guest,
    birth_date_level,
    compare,
    email_level,
    estimate,
    first_name_level,
    fold,
    last_name_level,
    match,
    match_prepared,
    prepare,
    probability,
)


def test_folding_transliterates_any_script_and_drops_accents_case_and_marks() -> None:
    assert fold("Zoë") == "zoe"
    assert fold("  O'Brien-Smith ") == "o brien smith"
    assert fold("Łukasz") == "lukasz"
    assert fold("Γιώργος") == "giorgos"
    assert fold("Дмитрий") == "dmitriy"
    assert fold("佐藤") != ""
    assert fold("") == ""
    assert fold(None) == ""
    assert fold("!!!") == ""


@pytest.mark.parametrize(
    ("a", "b", "level"),
    [
        ("William", "William", "exact"),
        ("José", "Jose", "folded"),
        ("william", "bill", "nickname"),
        ("Bill", "William", "nickname"),
        ("J.", "John", "initial"),
        ("Catherine", "Cathrine", "similar"),
        ("Anna", "Peter", "different"),
        ("", "Peter", None),
    ],
)
def test_first_name_levels(a: str, b: str, level: str | None) -> None:
    assert first_name_level(fold(a), fold(b), a.casefold(), b.casefold()) == level


@pytest.mark.parametrize(
    ("a", "b", "level"),
    [
        ("Müller", "Müller", "exact"),
        ("Müller", "Muller", "folded"),
        ("Whitfield", "Whitfiled", "similar"),
        ("Smith", "Nakamura", "different"),
        ("Smith", None, None),
    ],
)
def test_last_name_levels(a: str, b: str | None, level: str | None) -> None:
    assert last_name_level(fold(a), fold(b), a.casefold(), (b or "").casefold()) == level


@pytest.mark.parametrize(
    ("a", "b", "level"),
    [
        (date(1980, 3, 7), date(1980, 3, 7), "exact"),
        (date(1980, 3, 7), date(1980, 7, 3), "day_month_swapped"),
        (date(1980, 3, 7), date(1980, 3, 8), "one_digit_off"),
        (date(1980, 3, 7), date(1981, 3, 7), "one_digit_off"),
        (date(1952, 3, 6), date(1972, 3, 6), "different"),  # a father and son, not a slip
        (date(1980, 3, 7), date(1975, 11, 20), "different"),
        (None, date(1975, 11, 20), None),
    ],
)
def test_birth_date_levels(a: date | None, b: date | None, level: str | None) -> None:
    assert birth_date_level(a, b) == level


def test_email_levels_and_placeholder_local_parts() -> None:
    def p(email: str | None) -> matching.Prepared:
        return prepare(Guest("x", email=email))

    assert email_level(p("ana.novak@example.com"), p("ana.novak@example.com")) == "exact"
    assert email_level(p("ana.novak@example.com"), p("ana.novak@work.example")) == "same_local_part"
    assert email_level(p("noemail@a.example"), p("noemail@b.example")) == "different"
    assert email_level(p("info@a.example"), p(None)) is None


SYLLABLES = ("ka", "lo", "mi", "ne", "su", "ta", "vor", "ben", "dri", "gal", "hu", "zen", "pet")


def name(i: int) -> str:
    return "".join(SYLLABLES[i // 13**k % 13] for k in range(3)).capitalize()


def people(count: int) -> list[Guest]:
    """Distinct people with varied names, contacts and birth dates (for u-estimates)."""
    return [
        Guest(
            f"g{i:05d}",
            name(i * 7 + 3),
            name(i * 11 + 5) + "son",
            date(1940 + i % 60, 1 + i % 12, 1 + i % 28),
            f"person{i}@example.com",
            f"+4420794{i:05d}",
        )
        for i in range(count)
    ]


def test_weights_are_log_ratios_and_add_up_to_a_probability() -> None:
    base = people(2000)
    model = estimate([prepare(g) for g in base])
    a = prepare(Guest("a", "William", "Whitfield", date(1980, 3, 7), "w@x.example", "+441"))
    b = prepare(Guest("b", "Bill", "Whitfield", date(1980, 7, 3), None, "+441"))
    evidence = {e.field: e for e in compare(model, a, b)}
    assert evidence["first_name"].level == "nickname"
    assert evidence["first_name"].weight > 0
    assert evidence["birth_date"].level == "day_month_swapped"
    assert evidence["phone"].weight == pytest.approx(matching.CONTACT_CAP)  # capped: a household's
    assert "email" not in evidence  # one side has none: no evidence either way
    assert probability(0.0, 0.0) == pytest.approx(0.5)
    assert probability(10.0, -10.0) == pytest.approx(0.5)
    assert probability(200.0, 0.0) == 1.0


def test_a_conflicting_birth_date_outweighs_a_shared_name_and_phone() -> None:
    base = people(2000)
    model = estimate([prepare(g) for g in base])
    father = prepare(Guest("a", "William", "Blackwood", date(1950, 8, 4), None, "+447400000001"))
    son = prepare(Guest("b", "William", "Blackwood", date(1978, 1, 6), None, "+447400000001"))
    same = prepare(Guest("c", "William", "Blackwood", date(1950, 8, 4), None, "+447400000001"))
    against = sum(e.weight for e in compare(model, father, son))
    assert probability(against, model.log_prior) < 0.5
    assert probability(sum(e.weight for e in compare(model, father, same)), model.log_prior) > 0.99


def test_swapped_names_are_matched_with_a_small_penalty() -> None:
    model = estimate([prepare(g) for g in people(500)])
    a = prepare(Guest("a", "Jürgen", "Krüger", date(1970, 1, 2)))
    b = prepare(Guest("b", "Kruger", "Jurgen", date(1970, 1, 2)))
    levels = {(e.field, e.level) for e in compare(model, a, b)}
    assert ("names", "swapped") in levels
    assert ("first_name", "folded") in levels
    assert ("last_name", "folded") in levels


def test_a_value_on_thousands_of_profiles_neither_floods_nor_counts() -> None:
    agency = [
        Guest(f"t{i:05d}", f"Name{i}", f"Traveller{i}", None, "bookings@agency.example", "+1")
        for i in range(5000)
    ]
    found, blocking = match([*agency, *people(300)])
    assert found == []
    assert blocking.skipped["email"] == 1
    assert len(blocking.pairs) < 5000
    model = estimate([prepare(g) for g in agency])
    evidence = compare(model, prepare(agency[0]), prepare(agency[1]))
    assert ("email", "uninformative") in {(e.field, e.level) for e in evidence}


@pytest.mark.parametrize(
    "odd",
    [
        Guest("o1", "", "", None, None, None),
        Guest("o2", "J", "K", date(1990, 1, 1), "noemail@example.com", None),
        Guest("o3", "王", "小明", date(1990, 1, 1), None, None),
        Guest("o4", "Ольга", "Иванова", None, "olga@example.com", None),
        Guest("o5", "Νίκος", "Παπαδόπουλος", None, None, "+302101234567"),
        Guest("o6", "!!", "??", None, "@", None),
    ],
)
def test_bad_input_does_not_crash(odd: Guest) -> None:
    twin = Guest(odd.id + "b", odd.first_name, odd.last_name, odd.birth_date, odd.email, odd.phone)
    found, _ = match([odd, twin, *people(50)])
    assert all(s.probability <= 1.0 for s in found)


def test_suggestions_are_ordered_best_first_and_carry_their_evidence() -> None:
    base = people(1000)
    copy = Guest("zz", base[5].first_name, base[5].last_name, base[5].birth_date, None, None)
    found, _ = match([*base, copy], threshold=0.5)
    assert [(s.a, s.b) for s in found][:1] == [(base[5].id, "zz")]
    assert found == sorted(found, key=lambda s: -s.weight)
    fields = {e.field for e in found[0].evidence}
    assert {"first_name", "last_name", "birth_date"} <= fields


def test_the_early_exit_never_drops_a_pair_that_reaches_the_threshold() -> None:
    base = people(400)
    variants = [
        Guest("v1", base[1].last_name, base[1].first_name, base[1].birth_date, None, None),
        Guest("v2", "Bill", base[2].last_name, base[2].birth_date, base[2].email, None),
        Guest("v3", base[3].first_name, base[3].last_name, None, None, base[3].phone),
        Guest("v4", base[4].first_name, base[4].last_name, date(1999, 1, 1), None, base[4].phone),
        # swapped, and the first name a nickname read the other way round (seed 303 lost it)
        Guest("k1", "Mayridis", "Katerina", None, None, "+302101111111"),
        Guest("k2", "Aikaterini", "Mayridis", None, None, "+302101111111"),
    ]
    prepared = [prepare(g) for g in [*base, *variants]]
    model = estimate(prepared)
    for threshold in (0.5, 0.9, 0.99):
        at_least = matching.weight_for(threshold, model)
        for x, y in matching.candidate_pairs(prepared).pairs:
            a, b = prepared[x], prepared[y]
            full = sum(e.weight for e in compare(model, a, b))
            early = matching.compare_reaching(model, a, b, at_least)
            if full >= at_least:
                assert early is not None, (a.id, b.id)
                assert sum(e.weight for e in early) == pytest.approx(full)


def test_the_cached_bounds_decide_as_the_evidence_summed_afresh() -> None:
    """The names' bound kept per pair of names and the other fields' weight summed without
    evidence let through exactly the pairs the evidence, summed afresh, lets through."""
    base = people(400)
    prepared = [prepare(g) for g in [*base, *twins(120)[400:]]]
    model = estimate(prepared)
    fresh = estimate(prepared)  # the same u, no cache
    for threshold in (0.5, 0.9):
        at_least = matching.weight_for(threshold, model)
        decided = 0
        for x, y in matching.candidate_pairs(prepared).pairs:
            a, b = prepared[x], prepared[y]
            rest = sum(e.weight for e in matching._others(fresh, a, b))
            assert matching._others_weight(model, a, b) == rest
            afresh = rest + matching.names_bound(fresh, a, b) >= at_least
            assert (matching.compare_reaching(model, a, b, at_least) is not None) == afresh
            decided += afresh
        assert decided >= 120
    assert model.bounds  # kept, and read back by the second threshold


def twins(count: int) -> list[Guest]:
    """``people`` and a second entry of each of the first ``count``: another e-mail."""
    base = people(400)
    return base + [
        Guest(f"t{i:05d}", g.first_name, g.last_name, g.birth_date, f"t{i}@mail.test", g.phone)
        for i, g in enumerate(base[:count])
    ]


def test_weighing_in_forked_processes_finds_what_one_process_finds() -> None:
    from shared.quality import duplicates

    prepared = [prepare(g) for g in twins(120)]
    model = estimate(prepared)
    alone = match_prepared(prepared, model, duplicates.FLOOR)
    forked = duplicates.match(prepared, model, processes=2, parallel_from=1)
    assert len(alone[0]) >= 120
    assert forked[0] == alone[0]
    assert forked[1].pairs == alone[1].pairs


def test_weighing_beside_busy_work_goes_on_with_one_process_and_the_same_pairs() -> None:
    """The database indexing meanwhile (``busy``): one process weighs until it is done, the
    others after; work that never ends or fails holds nothing back."""
    import asyncio

    from shared.quality import duplicates

    prepared = [prepare(g) for g in twins(120)]
    model = estimate(prepared)
    alone = match_prepared(prepared, model, duplicates.FLOOR)[0]

    async def beside(outcome: str) -> list[Any]:
        busy: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if outcome == "failed":
            busy.set_exception(RuntimeError("the index call failed"))
        found, _ = await duplicates.amatch(prepared, model, processes=2, parallel_from=1, busy=busy)
        if outcome == "failed":
            assert isinstance(busy.exception(), RuntimeError)  # read: its owner's to report
        else:
            assert not busy.done()  # never done: one process weighed every pair
            busy.cancel()
        return found

    assert asyncio.run(beside("under way")) == alone
    assert asyncio.run(beside("failed")) == alone


def test_no_fork_from_a_process_with_another_thread() -> None:
    import threading

    from shared.quality import duplicates

    done = threading.Event()
    other = threading.Thread(target=done.wait)
    other.start()
    try:
        assert duplicates.weighing_processes() == 1
    finally:
        done.set()
        other.join()
