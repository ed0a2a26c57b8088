"""Normalising what guests give us, with well-kept libraries (pure).

E-mail: email-validator (syntax only: no DNS here or in a scoring run). Phone: phonenumbers,
parsed with the guest's nationality (then the hotel's country) as the default region and
formatted E.164. Country codes: pycountry (ISO 3166-1 alpha-2).
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


def phone(raw: str | None, regions: tuple[str | None, ...] = ()) -> Normalized:
    if raw is None or not raw.strip():
        return Normalized(None, None)
    text = raw.strip()
    candidates = [r.upper() for r in regions if r] or ["ZZ"]
    for region in candidates:
        try:
            number = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return Normalized(
                phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), True
            )
    return Normalized(None, False)


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
