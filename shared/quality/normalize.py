"""Normalising what guests give us, with well-kept libraries (pure).

E-mail: email-validator (syntax only: no DNS here or in a scoring run). Phone: phonenumbers,
formatted E.164: ``+`` and ``00`` numbers are international whatever the guest's country; a
national number is read with the guest's nationality (then address country) as its region. Country codes: pycountry (ISO 3166-1 alpha-2).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
import pycountry
from email_validator import EmailNotValidError, validate_email


@dataclass(frozen=True)
class Normalized:
    value: str | None
    valid: bool | None  # None: nothing to judge


def email(raw: str | None) -> Normalized:
    if raw is None or not raw.strip():
        return Normalized(None, None)
    try:
        result = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError:
        return Normalized(None, False)
    return Normalized(result.normalized.lower(), True)


# fewer digits than any numbering plan's shortest subscriber number, or one digit repeated
# ("000000"): not a phone in any region
_MIN_DIGITS = 4


def phone(raw: str | None, regions: tuple[str | None, ...] = ()) -> Normalized:
    """E.164 and whether the number is valid; ``valid`` None when it cannot be judged.

    A number written with ``+`` or ``00`` is international whatever the guest's country (the
    ``00`` is not read with the region's own exit code: US and JP dial out otherwise, and their
    guests still write ``00420 …``). Only a national number needs a region: the first usable one
    of ``regions`` (nationality, then address country); with none it stays unknown.
    """
    if raw is None or not raw.strip():
        return Normalized(None, None)
    text = raw.strip()
    digits = "".join(c for c in text if c.isdigit())
    if len(digits) < _MIN_DIGITS or len(set(digits)) == 1:
        return Normalized(None, False)
    international = _international(text)
    if international is not None:
        return _judged(international, None)
    candidates = [r.upper() for r in regions if r and r.upper() in _REGIONS]
    if not candidates:
        return Normalized(None, None)  # a national number and no region to read it in
    for region in candidates:
        found = _judged(text, region)
        if found.valid:
            return found
    return Normalized(None, False)


_REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS)


def _international(text: str) -> str | None:
    """``+…`` or ``00…`` (after leading punctuation) as ``+…``; None for a national number."""
    stripped = text.lstrip(" (.-\t")
    if stripped.startswith("+"):
        return stripped
    if stripped.startswith("00"):
        return "+" + stripped[2:]
    return None


def _judged(text: str, region: str | None) -> Normalized:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return Normalized(None, False)
    if not phonenumbers.is_valid_number(number):
        return Normalized(None, False)
    return Normalized(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), True)


@lru_cache(maxsize=512)
def country(code: str | None) -> str | None:
    """The ISO alpha-2 code for an alpha-2, alpha-3 or name; None when unknown."""
    if code is None or not code.strip():
        return None
    text = code.strip()
    try:
        found = pycountry.countries.lookup(text)
    except LookupError:
        return None
    return str(found.alpha_2)


def language_from_culture(code: str | None) -> str | None:
    """``en-GB`` → ``en-GB`` when its language part is a real ISO 639-1 code."""
    if not code:
        return None
    language = code.split("-", 1)[0].lower()
    return code if pycountry.languages.get(alpha_2=language) is not None else None
