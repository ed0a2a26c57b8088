"""Planner statistics that are current after every bulk write, whatever autovacuum does.

A server may run with autovacuum off, and on Supabase a job can run before autoanalyze has seen
a fresh load: a table the planner believes empty gets plans that read it once per row. So a job
that wrote a large share of a table analyzes it (``public.analyze_tables``: when the rows
written, or the statistics collector's count of changes since the last ANALYZE, exceed 10 % of
the table or 10,000 rows, or the table was never analyzed), and a job that reads tables others
load checks them first.

    await analyze_tables(store, {"guests": 20_000, "guest_addresses": 9_500})  # rows written
    await analyze_tables(store, SCORING_INPUTS)  # only what is stale
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from shared.db.store import Store

# what scoring reads that other jobs write (the first load, polls, webhooks)
SCORING_INPUTS = (
    "guests",
    "guest_addresses",
    "guest_identity_documents",
    "reservations",
    "guest_facts",
)
# what scoring writes
SCORING_OUTPUTS = (
    "guest_facts",
    "guest_enrichments",
    "guest_duplicates",
    "guest_scores",
    "guest_score_history",
)


async def analyze_tables(
    store: Store, tables: Mapping[str, int | None] | Iterable[str]
) -> list[str]:
    """ANALYZE each table whose statistics are missing or stale; ``tables`` maps a name to the
    rows just written (None: unknown). Returns the tables analyzed."""
    written = dict(tables) if isinstance(tables, Mapping) else dict.fromkeys(tables)
    if not written:
        return []
    result = await store.call("analyze_tables", p_tables=written)
    return [str(name) for name in result["analyzed"]]
