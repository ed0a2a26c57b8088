-- A slice of a full rescore joins its new scores to the old ones (about 100,000 of each) by
-- hashing, not by sorting both: the planner cannot estimate a join of two CTEs and chose a merge
-- join, two sorts of the slice (about 90 ms of a 1 s call at 100,000 guests). Nested loops are
-- untouched: one guest's rescore still goes straight to its rows.

alter function app.quality_score_write(uuid, uuid[], uuid, uuid) set enable_mergejoin = off;
