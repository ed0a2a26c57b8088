"""Hypothesis strategies: guest profiles as the scorer sees them, and valid rule sets."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from hypothesis import strategies as st

from shared.quality.rules import FIELDS, Rule

TODAY = date(2026, 11, 24)
TEXT = st.one_of(
    st.none(),
    st.just(""),
    st.just(" "),
    st.sampled_from(["Ana", "ana", "Müller", "GB", "it-IT", "X1", "Mister", "Female"]),
    st.text(alphabet="abcXYZ09 -@.", min_size=1, max_size=12),
)
COMPANY = st.one_of(st.none(), st.builds(lambda: str(uuid.uuid4())))


def value_for(field: str) -> st.SearchStrategy[Any]:
    kind = FIELDS[field]
    if kind == "bool":
        return st.booleans()
    if kind == "date":
        return st.one_of(
            st.none(), st.dates(min_value=date(1900, 1, 1), max_value=date(2030, 12, 31))
        )
    if field == "company":
        return COMPANY
    return TEXT


@st.composite
def profiles(draw: st.DrawFn, *, last_name_present: bool = False) -> dict[str, Any]:
    profile = {field: draw(value_for(field)) for field in FIELDS}
    if last_name_present:
        profile["last_name"] = draw(st.text(alphabet="abcXYZ", min_size=1, max_size=8))
    profile["email_valid"] = None if not (profile["email"] or "").strip() else draw(st.booleans())
    profile["phone_valid"] = None if not (profile["phone"] or "").strip() else draw(st.booleans())
    profile["email_ota"] = draw(st.booleans())
    return profile


VALIDATORS = st.one_of(
    st.builds(lambda w: Rule(field="email", kind="email", weight=w), st.integers(0, 30)),
    st.builds(lambda w: Rule(field="email", kind="not_ota_email", weight=w), st.integers(0, 30)),
    st.builds(lambda w: Rule(field="phone", kind="phone", weight=w), st.integers(0, 30)),
    st.builds(
        lambda f, w, lo, hi: Rule(field=f, kind="length", params={"min": lo, "max": hi}, weight=w),
        st.sampled_from(["first_name", "last_name", "loyalty_code"]),
        st.integers(0, 30),
        st.integers(0, 3),
        st.integers(3, 10),
    ),
    st.builds(
        lambda f, w, vs: Rule(field=f, kind="allowed_values", params={"values": vs}, weight=w),
        st.sampled_from(["title", "sex", "nationality_code"]),
        st.integers(0, 30),
        st.lists(
            st.sampled_from(["Mister", "Miss", "Female", "GB", "IT", "Ana"]), min_size=1, max_size=4
        ),
    ),
    st.builds(
        lambda f, w, p: Rule(field=f, kind="pattern", params={"regex": p}, weight=w),
        st.sampled_from(["first_name", "loyalty_code", "phone"]),
        st.integers(0, 30),
        st.sampled_from(["^[A-Z]", "^[a-z]+$", "[0-9]", "^(Ana|X1)$", "^.{2,5}$"]),
    ),
    st.builds(
        lambda w, lo, hi: Rule(
            field="birth_date",
            kind="date_range",
            params={"min_years_ago": lo, "max_years_ago": hi},
            weight=w,
        ),
        st.integers(0, 30),
        st.integers(0, 20),
        st.integers(20, 120),
    ),
    st.builds(
        lambda f, o, op, w: Rule(
            field=f, kind="cross_field", params={"other": o, "op": op}, weight=w
        ),
        st.sampled_from(["first_name", "email"]),
        st.sampled_from(["last_name", "phone"]),
        st.sampled_from(["differs", "equals"]),
        st.integers(0, 30),
    ),
)
REQUIRED = st.builds(
    lambda f, w: Rule(field=f, kind="required", weight=w),
    st.sampled_from(sorted(FIELDS)),
    st.integers(0, 30),
)
RULES = st.lists(st.one_of(REQUIRED, VALIDATORS), min_size=1, max_size=12)
