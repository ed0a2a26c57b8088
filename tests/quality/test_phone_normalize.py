"""Phones read as a front office would: ``+`` and ``00`` are international whatever the guest's
country; the nationality is only the region of a national number; no region: unknown.

The numbers are libphonenumber's own examples of each region's plan (phonenumbers.example_number).
"""

from __future__ import annotations

import phonenumbers
import pytest

from shared.quality.normalize import Normalized, phone

REGIONS = ("GB", "US", "JP", "CZ", "DE")
FORMAT = phonenumbers.PhoneNumberFormat


def example(region: str) -> tuple[str, str, str]:
    """(national, international, E.164) of the region's example number."""
    number = phonenumbers.example_number(region)
    assert number is not None
    return (
        phonenumbers.format_number(number, FORMAT.NATIONAL),
        phonenumbers.format_number(number, FORMAT.INTERNATIONAL),
        phonenumbers.format_number(number, FORMAT.E164),
    )


@pytest.mark.parametrize("region", REGIONS)
@pytest.mark.parametrize("nationality", [*REGIONS, None])
def test_plus_and_00_are_international_whatever_the_nationality(
    region: str, nationality: str | None
) -> None:
    _, international, e164 = example(region)
    written_00 = "00" + international.removeprefix("+")
    assert phone(international, (nationality,)) == Normalized(e164, True)
    assert phone(written_00, (nationality,)) == Normalized(e164, True)
    assert phone(" (" + written_00.replace(" ", "-"), (nationality,)) == Normalized(e164, True)


@pytest.mark.parametrize("region", REGIONS)
def test_a_national_number_is_read_in_the_guests_region(region: str) -> None:
    national, _, e164 = example(region)
    assert phone(national, (region,)) == Normalized(e164, True)
    # the address country stands in when the nationality is missing or not a region
    assert phone(national, (None, region)) == Normalized(e164, True)
    assert phone(national, ("XX", region)) == Normalized(e164, True)


def test_a_national_number_with_no_region_is_unknown_not_invalid() -> None:
    for region in REGIONS:
        national, _, _ = example(region)
        assert phone(national, ()) == Normalized(None, None)
        assert phone(national, (None, None)) == Normalized(None, None)


def test_a_national_number_that_is_not_one_of_the_region_is_invalid() -> None:
    national_gb, _, _ = example("GB")
    assert phone(national_gb, ("US",)).valid is False


@pytest.mark.parametrize("raw", ["12", "000000", "0000 000 000", "+1 000 000 0000", "00", "n/a"])
@pytest.mark.parametrize("nationality", ["GB", None])
def test_placeholders_are_invalid(raw: str, nationality: str | None) -> None:
    assert phone(raw, (nationality,)) == Normalized(None, False)


def test_nothing_written_is_nothing_to_judge() -> None:
    assert phone(None, ("GB",)) == Normalized(None, None)
    assert phone("  ", ("GB",)) == Normalized(None, None)
