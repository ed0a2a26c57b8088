"""A chain's duplicate suggestions, weighed: read its active guests, match, write (I/O).

The matching itself is :mod:`shared.quality.matching` (pure). A pass writes every pair at or
above :data:`FLOOR` (the lowest threshold an admin may choose); each enterprise sees the pairs
at or above its own threshold (``public.duplicate_settings``). Pairs the pass did not confirm are
pruned at its end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from shared.db.store import Store
from shared.quality import matching

FLOOR = 0.5
PAGE = 20_000
PUT_BATCH = 5_000


@dataclass
class Pass:
    guests: int = 0
    candidates: int = 0
    pairs: int = 0
    pruned: int = 0
    uninformative: dict[str, int] = field(default_factory=dict)  # key kind → values skipped


def guest_from_row(row: dict[str, Any]) -> matching.Guest:
    born = row.get("birth_date")
    return matching.Guest(
        id=str(row["id"]),
        first_name=row.get("first_name"),
        last_name=row.get("last_name"),
        birth_date=date.fromisoformat(born[:10]) if isinstance(born, str) and born else None,
        email=row.get("email"),
        phone=row.get("phone"),
    )


def pair_row(suggestion: matching.Suggestion) -> dict[str, Any]:
    return {
        "a": suggestion.a,
        "b": suggestion.b,
        "probability": round(suggestion.probability, 6),
        "weight": round(suggestion.weight, 3),
        "evidence": [e.as_json() for e in sorted(suggestion.evidence, key=lambda e: -e.weight)],
    }


async def read_guests(store: Store, chain_id: str) -> list[matching.Guest]:
    guests: list[matching.Guest] = []
    after = None
    while True:
        page = await store.call(
            "quality_duplicate_inputs", p_chain_id=chain_id, p_after=after, p_limit=PAGE
        )
        guests += [guest_from_row(row) for row in page["guests"]]
        after = page["next"]
        if after is None:
            return guests


async def rebuild(store: Store, chain_id: str) -> Pass:
    """Every suggestion of a chain again; what no longer matches is removed."""
    guests = await read_guests(store, chain_id)
    found, blocking = matching.match(guests, threshold=FLOOR)
    done = Pass(guests=len(guests), candidates=len(blocking.pairs), uninformative=blocking.skipped)
    started = None
    rows = [pair_row(s) for s in found]
    for start in range(0, max(len(rows), 1), PUT_BATCH):
        put = await store.call(
            "quality_duplicates_put", p_chain_id=chain_id, p_pairs=rows[start : start + PUT_BATCH]
        )
        done.pairs += int(put["pairs"])
        started = started or put["at"]
    done.pruned = int(
        await store.call("quality_duplicates_prune", p_chain_id=chain_id, p_before=started)
    )
    return done
