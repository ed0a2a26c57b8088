"""A chain's duplicate suggestions, weighed: read its active guests, match, write (I/O).

The matching itself is :mod:`shared.quality.matching` (pure). A pass writes every pair at or
above :data:`FLOOR` (the lowest threshold an admin may choose); each enterprise sees the pairs
at or above its own threshold (``public.duplicate_settings``).

Two ways, in proportion to what changed:

- :func:`rebuild`, the full pass (a first load, a bulk change, no model yet): every active guest
  read (pages of ``quality_duplicates_read``), the model's u-probabilities estimated (or the
  stored ones reused while the chain's size is within a tenth of theirs), every candidate pair
  weighed. Only what differs is written: pairs new or changed (``quality_duplicates_put``),
  pairs no longer found removed (``quality_duplicates_forget``), the blocking keys of guests
  whose inputs' digest changed (``quality_duplicates_keys_put`` while the guests are prepared;
  many of them indexed by ranges of key values, ``quality_duplicates_keys_index``, while the
  model is estimated and the first pairs weighed: :class:`KeysWriter`), the name counts when
  they changed. A second pass over unchanged guests writes nothing.
- :func:`update`, around guests that changed (queued by ``quality_facts_put``): a page of them
  claimed, their keys replaced and the guests sharing a key looked up by index
  (``quality_duplicates_around``), compared with the chain's stored model, their pairs replaced.
  Nothing queued: nothing read, nothing written.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import itertools
import multiprocessing
import os
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import xxhash

from shared.db.store import Store
from shared.logs import get_logger
from shared.quality import matching
from shared.quality.statistics import analyze_tables

FLOOR = 0.5
PAGE = 50_000  # guests (or pairs) read per call
PUT_BATCH = 5_000
KEYS_BATCH = 20_000
KEYS_BULK = 50_000  # from this many guests with new keys, their keys indexed a key range a call
INDEX_CALL_KEYS = 500_000  # keys indexed per call (2-3 s here: well within the API's 8 s)
MOST_KEYS = 7  # blocking keys of one guest at most (matching.blocking_keys)
PREPARE_STEP = 2_000  # guests prepared between two turns of the event loop
log = get_logger(__name__)
PARALLEL_PAIRS = 200_000  # from this many candidate pairs, weighed by a process per core
CHUNK_PAIRS = 50_000
CLAIM = 200  # guests claimed from the queue per update
REESTIMATE_SHARE = 0.1  # the stored u are reused while the chain's size is within this share
KEYS_VERSION = "3"  # bump when blocking keys are made differently: every guest's keys rewritten
COUNTED = ("first_name", "first_name_raw", "last_name", "last_name_raw", "birth_date")


@dataclass
class Pass:
    guests: int = 0
    candidates: int = 0
    pairs: int = 0  # pairs written (new or changed)
    pruned: int = 0  # pairs removed
    found: int = 0  # pairs at or above FLOOR
    keys_written: int = 0  # guests whose blocking keys were (re)written
    estimated: bool = False
    unchanged: bool = False  # the fingerprint of the last pass read again: nothing weighed
    uninformative: dict[str, int] = field(default_factory=dict)  # key kind → values skipped
    took: dict[str, float] = field(default_factory=dict)  # seconds per phase


@dataclass
class Update:
    guests: int = 0  # claimed from the queue
    compared: int = 0  # candidate pairs weighed
    pairs: int = 0  # written
    pruned: int = 0
    more: bool = False
    no_model: bool = False  # no full pass yet: the queue waits for one
    uninformative: int = 0  # keys too common to pair on, among the changed guests'


_HALF = 1 << 63


def digest(text: str) -> int:
    """A signed 64-bit digest (a bigint in the database): XXH3, a tenth of blake2b's time over
    the six million blocking keys of a million guests; not a secret, a name for a value."""
    return xxhash.xxh3_64_intdigest(text.encode()) - _HALF


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


def guest_from_array(row: list[Any]) -> matching.Guest:
    """``app.duplicate_input``: id, first name, last name, birth date, e-mail, phone."""
    born = row[3]
    return matching.Guest(
        str(row[0]),
        row[1],
        row[2],
        date.fromisoformat(born[:10]) if isinstance(born, str) and born else None,
        row[4],
        row[5],
    )


def inputs_digest(guest: matching.Guest) -> int:
    """What the matcher reads of a guest, digested: a change means new keys."""
    # "" for None; a date as its ISO form (f-strings: a pass digests every guest)
    g = guest
    text = (
        f"{KEYS_VERSION}\x1f{g.first_name or ''}\x1f{g.last_name or ''}\x1f{g.birth_date or ''}"
        f"\x1f{g.email or ''}\x1f{g.phone or ''}"
    )
    return xxhash.xxh3_64_intdigest(text.encode()) - _HALF


def chain_seed(chain_id: str) -> int:
    """The seed a chain's blocking keys are digested with: its keys are its own in the one
    index of every chain's keys (``app.duplicate_keys``, by key and guest)."""
    return xxhash.xxh3_64_intdigest(str(chain_id).encode())


def key_digests(keys: list[str], seed: int) -> list[int]:
    """Each blocking key of a guest digested with its chain's :func:`chain_seed` (inlined: 6M
    keys at 1M guests)."""
    hashed = xxhash.xxh3_64_intdigest
    return [hashed(k.encode(), seed) - _HALF for k in keys]


def key_row(p: matching.Prepared, guest_digest: int, seed: int) -> dict[str, Any]:
    keys = matching.blocking_keys(p)
    return {
        "id": p.id,
        "digest": guest_digest,
        "keys": key_digests(keys, seed),
        "caps": [matching.cap(k) for k in keys],
    }


def count_key(name: str, value: Any) -> int:
    return digest(f"{name}\x1f{value}")


def pair_row(suggestion: matching.Suggestion) -> dict[str, Any]:
    return {
        "a": suggestion.a,
        "b": suggestion.b,
        "probability": round(suggestion.probability, 6),
        "weight": round(suggestion.weight, 3),
        "evidence": [e.as_json() for e in sorted(suggestion.evidence, key=lambda e: -e.weight)],
    }


def _same(row: dict[str, Any], stored: list[Any]) -> bool:
    """A pair as found equals the pair as stored (real columns: 6 significant digits)."""
    same_evidence: bool = stored[4] == row["evidence"]
    return (
        same_evidence
        and abs(float(stored[2]) - row["probability"]) <= 1e-6 * max(1.0, row["probability"])
        and abs(float(stored[3]) - row["weight"]) <= 1e-5 * max(1.0, abs(row["weight"]))
    )


def _matcher_version() -> int:
    """The code that weighs (the matcher, its nicknames, this module, the libraries it compares
    with), digested: a new version weighs everyone again."""
    from importlib import metadata

    from shared.quality import nicknames

    parts = [metadata.version(name) for name in ("anyascii", "rapidfuzz")]
    for module in (matching.__file__, nicknames.__file__, __file__):
        try:
            parts.append(Path(module or "").read_text())
        except OSError:  # no source beside the code: every pass weighs everyone
            parts.append(str(time.time_ns()))
    return digest("\x1f".join(parts))


_MATCHER = _matcher_version()


def fingerprint(
    inputs: list[tuple[matching.Guest, int | None]],
    digests: list[int],
    held: set[tuple[str, str]],
    pairs: Iterable[tuple[str, str, Any]],
) -> str:
    """What a pass weighed and what it left stored: every active guest's inputs digest, the
    pairs held back, the stored pairs (ids and evidence, in id order), the matcher's code."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{KEYS_VERSION}\x1f{FLOOR}\x1f{_MATCHER}\x1e".encode())
    h.update("\x1f".join(f"{g.id}:{d}" for (g, _), d in zip(inputs, digests, strict=True)).encode())
    h.update(b"\x1e" + "\x1f".join(f"{a}:{b}" for a, b in sorted(held)).encode() + b"\x1e")
    for a, b, evidence in sorted(pairs, key=lambda p: (p[0], p[1])):
        h.update(orjson.dumps([a, b, evidence], option=orjson.OPT_SORT_KEYS))
    return h.hexdigest()


async def read_guests(store: Store, chain_id: str) -> list[matching.Guest]:
    return [guest for guest, _ in await read_inputs(store, chain_id)]


# the ids are read in two halves at once: the database builds a page of one while the other's
# is decoded here
HALVES = (None, "7fffffff-ffff-ffff-ffff-ffffffffffff", None)


async def read_inputs(store: Store, chain_id: str) -> list[tuple[matching.Guest, int | None]]:
    """Every active guest of the chain and the digest its keys were written with (None: none),
    in id order."""
    halves = await asyncio.gather(
        *(_read_range(store, chain_id, low, high) for low, high in itertools.pairwise(HALVES))
    )
    return [row for half in halves for row in half]


async def _read_range(
    store: Store, chain_id: str, after: str | None, last: str | None
) -> list[tuple[matching.Guest, int | None]]:
    """The guests with ids after ``after`` up to ``last`` (None: no bound)."""
    found: list[tuple[matching.Guest, int | None]] = []
    while True:
        page = await store.call(
            "quality_duplicates_read", p_chain_id=chain_id, p_after=after, p_limit=PAGE
        )
        rows = page["guests"]
        if last is not None and rows and str(rows[-1][0]) > last:
            found += [(guest_from_array(row), row[6]) for row in rows if str(row[0]) <= last]
            return found
        found += [(guest_from_array(row), row[6]) for row in rows]
        after = page["next"]
        if after is None:
            return found


async def read_held(store: Store, chain_id: str) -> set[tuple[str, str]]:
    """The pairs a person's decision holds back now (``quality_duplicates_held``): never
    written, so that a pass does not find them new each time (the triggers on
    ``guest_duplicates`` would drop them again after every write)."""
    held = await store.call("quality_duplicates_held", p_chain_id=chain_id)
    return {(str(a), str(b)) for a, b in held or []}


async def read_pairs(store: Store, chain_id: str) -> dict[tuple[str, str], list[Any]]:
    stored: dict[tuple[str, str], list[Any]] = {}
    after = None
    while True:
        page = await store.call(
            "quality_duplicates_pairs", p_chain_id=chain_id, p_after=after, p_limit=PAGE
        )
        for row in page["pairs"]:
            stored[(str(row[0]), str(row[1]))] = row
        after = page["next"]
        if after is None:
            return stored


def model_json(
    model: matching.Model,
    skipped: dict[str, int] | None = None,
    *,
    fingerprint: str | None = None,
    candidates: int = 0,
    found: int = 0,
) -> dict[str, Any]:
    """The model as stored, with the values its last pass found too common to pair on (the
    report names them), and that pass's fingerprint and counts (a pass that reads the same
    fingerprint weighs nothing)."""
    return {
        "keys_version": KEYS_VERSION,
        "n": model.n,
        "u": model.u,
        "uninformative": model.uninformative,
        "skipped": skipped or {},
        "fingerprint": fingerprint,
        "candidates": candidates,
        "found": found,
    }


def model_from(state: dict[str, Any], counts: dict[str, Any]) -> matching.Model:
    stored = state["model"]
    return matching.Model(
        n=int(stored["n"]),
        u={
            name: {level: float(u) for level, u in levels.items()}
            for name, levels in stored["u"].items()
        },
        counts=counts,
        uninformative=int(stored.get("uninformative", matching.UNINFORMATIVE)),
    )


def _counts_rows(counts: dict[str, Any]) -> list[list[int]]:
    """Names and birth dates held by two profiles or more, as [key, held], sorted."""
    rows = [
        [count_key(name, value), held]
        for name in COUNTED
        for value, held in counts[name].items()
        if held >= 2
    ]
    rows.sort()
    return rows


async def _write(
    store: Store, chain_id: str, fn: str, arg: str, rows: list[Any], *, batch: int
) -> int:
    written = 0
    for start in range(0, len(rows), batch):
        done = await store.call(fn, p_chain_id=chain_id, **{arg: rows[start : start + batch]})
        written += int(done["pairs"]) if isinstance(done, dict) else int(done or 0)
    return written


async def rebuild(store: Store, chain_id: str) -> Pass:
    """Every suggestion of a chain weighed again; only what differs is written."""
    collecting = gc.isenabled()
    gc.disable()  # millions of objects made, none in a cycle: a collection only walks them
    try:
        return await _rebuild(store, chain_id)
    finally:
        if collecting:
            gc.enable()


async def _rebuild(store: Store, chain_id: str) -> Pass:
    clock = time.perf_counter()
    inputs = await read_inputs(store, chain_id)
    state = await store.call("quality_duplicates_model", p_chain_id=chain_id)
    stored = await read_pairs(store, chain_id)
    held = await read_held(store, chain_id)
    laps: dict[str, float] = {}
    clock = _lap(laps, "read", clock)
    digests = [inputs_digest(guest) for guest, _ in inputs]
    before = (state or {}).get("model") or {}
    if (
        before.get("fingerprint")
        and int(state.get("keyed") or 0) == len(inputs)
        and all(d == old for d, (_, old) in zip(digests, inputs, strict=True))
        and before["fingerprint"]
        == fingerprint(inputs, digests, held, ((a, b, r[4]) for (a, b), r in stored.items()))
    ):  # weighed already, and what it found is what is stored
        _lap(laps, "fingerprint", clock)
        return Pass(
            guests=len(inputs),
            candidates=int(before.get("candidates") or 0),
            found=int(before.get("found") or 0),
            unchanged=True,
            uninformative=dict(before.get("skipped") or {}),
            took=laps,
        )
    clock = _lap(laps, "fingerprint", clock)
    if before.get("keys_version") != KEYS_VERSION or before.get("keys_incomplete"):
        # no whole pass stands behind the stored keys (none yet, keys made another way, or a
        # pass that stopped while indexing them): every guest's keys are written again
        inputs = [(guest, None) for guest, _ in inputs]
    # stale keys (guests no longer active) exist when more guests have keys than active ones
    stale = int((state or {}).get("keyed") or 0) > sum(1 for _, d in inputs if d is not None)
    keys_writer = KeysWriter(
        store, chain_id, sum(d != old for d, (_, old) in zip(digests, inputs, strict=True))
    )
    try:
        return await _weigh_and_write(
            store,
            chain_id,
            inputs=inputs,
            digests=digests,
            state=state,
            stored=stored,
            held=held,
            keys_writer=keys_writer,
            laps=laps,
            stale=stale,
        )
    finally:
        await keys_writer.cancel()  # after a failure: nothing left running behind the caller


async def _weigh_and_write(
    store: Store,
    chain_id: str,
    *,
    inputs: list[tuple[matching.Guest, int | None]],
    digests: list[int],
    state: dict[str, Any] | None,
    stored: dict[tuple[str, str], list[Any]],
    held: set[tuple[str, str]],
    keys_writer: KeysWriter,
    laps: dict[str, float],
    stale: bool,
) -> Pass:
    """Prepare every guest (the new keys written meanwhile), weigh the candidate pairs (the keys
    indexed meanwhile), write the pairs that differ, then the counts and the model."""
    clock = time.perf_counter()
    if keys_writer.bulk and state:
        # the keys are recorded first and indexed after: until this pass stores its model,
        # updates wait for it and a pass after a stop in between writes every guest's keys again
        await store.call(
            "quality_duplicates_model_put",
            p_chain_id=chain_id,
            p_model={
                **{
                    k: v
                    for k, v in state["model"].items()
                    if k not in ("keys_version", "fingerprint")
                },
                "keys_incomplete": True,
            },
            p_guests=state["guests"],
            p_counts_digest=state.get("counts_digest"),
            p_estimated=False,
        )
    prepared: list[matching.Prepared] = []
    keys: list[list[str]] = []
    for start in range(0, len(inputs), PREPARE_STEP):
        step = slice(start, start + PREPARE_STEP)
        # a step's guests prepared together, then their keys: the prepared guests lie close in
        # memory, and each weighing process forked later copies fewer pages of them
        # (a process copies each page it touches: 30 % fewer than one guest and its keys
        # after another)
        ready = [matching.prepare(guest) for guest, _ in inputs[step]]
        prepared += ready
        for p, (_, written), new in zip(ready, inputs[step], digests[step], strict=True):
            keys.append(guest_keys := matching.blocking_keys(p))
            if new != written:
                keys_writer.add(p.id, new, guest_keys)
        await keys_writer.turn()
    await keys_writer.guests_done()  # in bulk, the database indexes the keys from here
    clock = _lap(laps, "prepare", clock)
    # meanwhile this process counts, estimates and blocks, in a thread of its own so that the
    # event loop keeps the index's calls going; the thread ends before any weighing process is
    # forked (a fork copies the locks other threads hold)
    with ThreadPoolExecutor(1, thread_name_prefix="duplicates-model") as thread:
        model, estimated, blocking = await asyncio.get_running_loop().run_in_executor(
            thread, _model_and_blocking, prepared, keys, state
        )
    del keys
    clock = _lap(laps, "model and blocking", clock)
    # the pairs weighed by one process while the database indexes (it takes a core), by a
    # process per core once it is done
    found, blocking = await amatch(prepared, model, blocking=blocking, busy=keys_writer.indexing)
    clock = _lap(laps, "match", clock)
    await keys_writer.indexed()
    clock = _lap(laps, "keys indexed", clock)
    n = len(prepared)
    done = Pass(
        guests=n,
        candidates=len(blocking.pairs),
        found=len(found),
        estimated=estimated,
        uninformative=blocking.skipped,
        took=laps,
    )
    rows = []
    kept = []  # the pairs stored once this pass is done
    for suggestion in found:
        if (suggestion.a, suggestion.b) in held:
            continue
        row = pair_row(suggestion)
        kept.append((row["a"], row["b"], row["evidence"]))
        old = stored.pop((suggestion.a, suggestion.b), None)
        if old is None or not _same(row, old):
            rows.append(row)
    done.pairs = await _write(
        store, chain_id, "quality_duplicates_put", "p_pairs", rows, batch=PUT_BATCH
    )
    done.pruned = await _write(
        store,
        chain_id,
        "quality_duplicates_forget",
        "p_pairs",
        [list(k) for k in stored],
        batch=PUT_BATCH,
    )
    clock = _lap(laps, "write pairs", clock)
    done.keys_written = await keys_writer.finish(inputs if stale else None)
    counted = _counts_rows(model.counts)
    counts_digest = f"{digest(repr(counted)):x}"
    if not state or state.get("counts_digest") != counts_digest:
        for start in range(0, max(len(counted), 1), 100_000):
            await store.call(
                "quality_duplicates_counts_put",
                p_chain_id=chain_id,
                p_counts=counted[start : start + 100_000],
                p_replace=start == 0,
            )
    done_print = fingerprint(inputs, digests, held, kept)
    before = (state or {}).get("model") or {}
    if (
        estimated
        or keys_writer.bulk
        or not state
        or state.get("counts_digest") != counts_digest
        or state["guests"] != n
        or before.get("fingerprint") != done_print
    ):
        await store.call(
            "quality_duplicates_model_put",
            p_chain_id=chain_id,
            p_model=model_json(
                model,
                blocking.skipped,
                fingerprint=done_print,
                candidates=len(blocking.pairs),
                found=len(found),
            ),
            p_guests=n,
            p_counts_digest=counts_digest,
            p_estimated=estimated,
        )
    _lap(laps, "keys and model", clock)
    return done


def _model_and_blocking(
    prepared: list[matching.Prepared], keys: list[list[str]], state: dict[str, Any] | None
) -> tuple[matching.Model, bool, matching.Blocking]:
    """The chain's model (the stored u reused while the chain's size is within a tenth of the
    one they were estimated on; whether estimated) and the candidate pairs."""
    counts = matching.value_counts(prepared)
    n = len(prepared)
    if state and abs(int(state["model"]["n"]) - n) <= REESTIMATE_SHARE * max(n, 1):
        model = model_from(state, counts)
        model.n = n
        estimated = False
    else:
        model = matching.estimate(prepared, counts=counts)
        estimated = True
    return model, estimated, matching.candidate_pairs(prepared, model.uninformative, keys)


# what the weighing processes read (inherited when forked, never pickled)
_WORK: list[tuple[list[matching.Prepared], matching.Model, list[tuple[int, int]], float]] = []


def _weigh(bounds: tuple[int, int]) -> list[matching.Suggestion]:
    ((prepared, model, pairs, at_least),) = _WORK
    found = []
    for x, y in pairs[bounds[0] : bounds[1]]:
        suggestion = matching.suggest(model, prepared[x], prepared[y], FLOOR, at_least)
        if suggestion is not None:
            found.append(suggestion)
    return found


def weighing_processes() -> int:
    """How many processes may weigh at once: one per core, but only from a process with no
    other thread (a fork copies the locks other threads hold; the functions' server runs
    threads), where fork exists."""
    if "fork" not in multiprocessing.get_all_start_methods() or threading.active_count() > 1:
        return 1
    return min(os.cpu_count() or 1, 8)


def match(
    prepared: list[matching.Prepared],
    model: matching.Model,
    *,
    processes: int | None = None,
    parallel_from: int = PARALLEL_PAIRS,
) -> tuple[list[matching.Suggestion], matching.Blocking]:
    """:func:`amatch` from code that runs no event loop."""
    return asyncio.run(amatch(prepared, model, processes=processes, parallel_from=parallel_from))


async def amatch(
    prepared: list[matching.Prepared],
    model: matching.Model,
    *,
    blocking: matching.Blocking | None = None,
    processes: int | None = None,
    parallel_from: int = PARALLEL_PAIRS,
    busy: asyncio.Future[Any] | None = None,
) -> tuple[list[matching.Suggestion], matching.Blocking]:
    """:func:`matching.match_prepared` at :data:`FLOOR` (the same suggestions, in the same
    order), the candidate pairs weighed by a forked process per core when they are many, the
    event loop turning meanwhile (the process's other tasks go on). ``blocking``: the candidate
    pairs, when found already; ``processes``: None, :func:`weighing_processes`; ``busy``: work
    that keeps a core busy meanwhile (the database indexing): until it is done, one process
    weighs (on two cores, a third busy process slowed the others far past its share). A
    weighing process that dies (killed, out of memory) costs time only: the pairs are weighed
    here."""
    workers = weighing_processes() if processes is None else processes
    if blocking is None:
        blocking = matching.candidate_pairs(prepared, model.uninformative)
    pairs = list(blocking.pairs)
    _WORK.append((prepared, model, pairs, matching.weight_for(FLOOR, model)))
    try:
        size = max(1, min(CHUNK_PAIRS, -(-len(pairs) // (max(workers, 1) * 4))))
        chunks = [(lo, lo + size) for lo in range(0, len(pairs), size)]
        if workers < 2 or len(pairs) < parallel_from:
            found = []
            for chunk in chunks:  # the loop turns between chunks
                found += _weigh(chunk)
                await asyncio.sleep(0)
        else:
            found = await _weigh_forked(chunks, workers, busy)
    finally:
        _WORK.clear()
    found.sort(key=lambda s: (-s.weight, s.a, s.b))
    return found, blocking


async def _weigh_forked(
    chunks: list[tuple[int, int]], workers: int, busy: asyncio.Future[Any] | None = None
) -> list[matching.Suggestion]:
    loop = asyncio.get_running_loop()
    context = multiprocessing.get_context("fork")
    todo = iter(chunks)
    parts: list[list[matching.Suggestion]] = []

    async def weigh_in_turn(pool: ProcessPoolExecutor) -> None:
        for chunk in todo:  # the next chunk not taken yet
            parts.append(await loop.run_in_executor(pool, _weigh, chunk))

    try:
        # every process forked at the first call, before the pool's own thread starts
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            first = asyncio.ensure_future(weigh_in_turn(pool))
            try:
                if busy is not None:  # the others once it is done (or all is weighed); its
                    # outcome is its owner's to read
                    await asyncio.wait([busy, first], return_when=asyncio.FIRST_COMPLETED)
                await asyncio.gather(first, *(weigh_in_turn(pool) for _ in range(workers - 1)))
            finally:
                first.cancel()  # done already, unless this call was cancelled
        return [s for part in parts for s in part]
    except BrokenProcessPool:
        log.warning("a weighing process died; weighing in this one", chunks=len(chunks))
        return [s for chunk in chunks for s in _weigh(chunk)]


def _lap(laps: dict[str, float], phase: str, since: float) -> float:
    now = time.perf_counter()
    laps[phase] = laps.get(phase, 0.0) + now - since
    return now


class KeysWriter:
    """The blocking keys of the guests whose inputs changed (all of them the first time),
    written while a full pass goes on.

    Each guest's digest and keys (``quality_duplicates_keys_put``) a batch at a time, one call
    under way while the guests are prepared. Few guests: their keys indexed by the same call.
    Many (:data:`KEYS_BULK`): indexed once all are recorded, a range of key values per call
    (``quality_duplicates_keys_index``, sorted by the database: one stretch of the index each)
    while the pass counts, estimates and blocks, then beside one weighing process (:attr:`indexing`:
    on two cores, indexing beside two weighing processes slowed both more than either took
    alone); awaited before the model is stored. Then the keys of guests no longer active
    forgotten, and the statistics the updates plan on made current."""

    def __init__(self, store: Store, chain_id: str, changed: int) -> None:
        self.store, self.chain_id = store, chain_id
        self.seed = chain_seed(chain_id)
        self.bulk = changed >= KEYS_BULK
        self.ranges = max(1, -(-changed * MOST_KEYS // INDEX_CALL_KEYS)) if self.bulk else 0
        self.range_keys: list[list[int]] = [[] for _ in range(self.ranges)]
        self.range_ids: list[list[str]] = [[] for _ in range(self.ranges)]
        self.rows: list[tuple[str, int, list[int]]] = []
        self.written = 0
        self.indexed_keys = 0
        self._put: asyncio.Task[int] | None = None
        self._index: asyncio.Task[int] | None = None

    def add(self, guest_id: str, guest_digest: int, keys: list[str]) -> None:
        """A guest whose inputs changed (in id order), its keys as matching made them."""
        hashed = key_digests(keys, self.seed)
        self.rows.append((guest_id, guest_digest, hashed))
        if self.bulk:
            ranges, range_keys, range_ids = self.ranges, self.range_keys, self.range_ids
            for key in hashed:
                at = ((key + _HALF) * ranges) >> 64  # the range of key values it falls in
                range_keys[at].append(key)
                range_ids[at].append(guest_id)

    async def turn(self) -> None:
        """A batch sent when one is ready and none is under way; the event loop turns."""
        if self._put is not None and self._put.done():
            self.written += self._put.result()
            self._put = None
        if self._put is None and len(self.rows) >= KEYS_BATCH:
            self._put = asyncio.create_task(self._send(self.rows[:KEYS_BATCH]))
            del self.rows[:KEYS_BATCH]
        await asyncio.sleep(0)

    async def _send(self, rows: list[tuple[str, int, list[int]]]) -> int:
        return int(
            await self.store.call(
                "quality_duplicates_keys_put",
                p_chain_id=self.chain_id,
                p_ids=",".join(guest for guest, _, _ in rows),
                p_digests=",".join(str(d) for _, d, _ in rows),
                p_keys="".join(" ".join(map(str, keys)) + ";" for _, _, keys in rows),
                p_index=not self.bulk,
            )
        )

    async def guests_done(self) -> None:
        """Every changed guest added: the rest sent; in bulk, the indexing begun (after the
        last batch: a batch removes its guests' old keys from the index)."""
        if self._put is not None:
            self.written += await self._put
            self._put = None
        for start in range(0, len(self.rows), KEYS_BATCH):
            self.written += await self._send(self.rows[start : start + KEYS_BATCH])
        self.rows = []
        if self.bulk:
            self._index = asyncio.create_task(self._index_ranges())

    @property
    def indexing(self) -> asyncio.Task[int] | None:
        """The indexing begun by :meth:`guests_done`, while under way (None: none)."""
        return self._index

    async def indexed(self) -> None:
        """The indexing begun by :meth:`guests_done`, awaited."""
        if self._index is not None:
            self.indexed_keys = await self._index
            self._index = None

    async def _index_ranges(self) -> int:
        indexed = 0
        for at in range(self.ranges):
            keys, ids = self.range_keys[at], self.range_ids[at]
            for start in range(0, len(keys), INDEX_CALL_KEYS):
                indexed += int(
                    await self.store.call(
                        "quality_duplicates_keys_index",
                        p_keys=",".join(map(str, keys[start : start + INDEX_CALL_KEYS])),
                        p_guests=",".join(ids[start : start + INDEX_CALL_KEYS]),
                    )
                )
            self.range_keys[at], self.range_ids[at] = [], []
        return indexed

    async def finish(self, inputs: list[tuple[matching.Guest, int | None]] | None) -> int:
        """The statistics of what was written made current; the keys of guests no longer active
        forgotten (``inputs``: the active guests, in id order; None: none are gone); how many
        guests' keys were written."""
        if self.written:  # what the updates around one guest plan their lookups on
            await analyze_tables(
                self.store,
                {
                    "app.duplicate_keys": self.indexed_keys or self.written * MOST_KEYS,
                    "app.duplicate_guests": self.written,
                },
            )
        # the keys of guests no longer active, a range of ids (a page's worth) per call
        bounds: list[str | None] = [None, *(g.id for g, _ in (inputs or [])[PAGE::PAGE]), None]
        for low, high in itertools.pairwise(bounds if inputs is not None else []):
            await self.store.call(
                "quality_duplicates_keys_prune", p_chain_id=self.chain_id, p_from=low, p_to=high
            )
        return self.written

    async def cancel(self) -> None:
        """What is still under way stopped and awaited (a failed pass leaves no task)."""
        for task in (self._put, self._index):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._put = self._index = None


def _asked_counts(prepared: Iterable[matching.Prepared]) -> dict[int, tuple[str, Any]]:
    """The count keys of the values an exact name or birth date of these guests weighs by."""
    asked: dict[int, tuple[str, Any]] = {}
    for p in prepared:
        for name in ("first_name", "last_name"):
            for value in (p.first, p.last):
                if value:
                    asked[count_key(name, value)] = (name, value)
            for value in (p.first_raw, p.last_raw):
                if value:
                    asked[count_key(name + "_raw", value)] = (name + "_raw", value)
        if p.birth:
            asked[count_key("birth_date", p.birth)] = ("birth_date", p.birth)
    return asked


async def update(store: Store, chain_id: str, *, limit: int = CLAIM) -> Update:
    """The suggestions around up to ``limit`` queued guests of the chain, replaced."""
    claim = await store.call("quality_duplicates_claim", p_chain_id=chain_id, p_limit=limit)
    ids = [str(i) for i in claim["ids"]]
    done = Update(guests=len(ids), more=bool(claim["more"]))
    if not ids:
        return done
    stored_model = (claim["model"] or {}).get("model") or {}
    if stored_model.get("keys_version") != KEYS_VERSION:
        # no full pass yet, or none since keys are made differently (the index holds keys this
        # code does not make): the full pass will weigh everyone
        done.no_model, done.more = True, False
        return done
    changed = [matching.prepare(guest_from_array(row)) for row in claim["guests"]]
    active = {p.id for p in changed}
    seed = chain_seed(chain_id)
    rows = [
        key_row(p, inputs_digest(guest_from_array(r)), seed)
        for p, r in zip(changed, claim["guests"], strict=True)
    ]
    rows += [{"id": i, "digest": 0, "keys": [], "caps": []} for i in ids if i not in active]
    asked = _asked_counts(changed)
    around = await store.call(
        "quality_duplicates_around", p_chain_id=chain_id, p_guests=rows, p_counts=list(asked)
    )
    held = {int(k): int(v) for k, v in around["held"].items()}
    counts: dict[str, dict[Any, int]] = {name: {} for name in (*COUNTED, "email", "phone", "local")}
    for key, count in around["counts"].items():
        name, value = asked[int(key)]
        counts[name][value] = int(count)
    for p in changed:
        for kind, value in (("e", p.email), ("p", p.phone), ("l", p.local)):
            if value:
                name = {"e": "email", "p": "phone", "l": "local"}[kind]
                counts[name][value] = held.get(key_digests([f"{kind}:{value}"], seed)[0], 1)
    model = model_from(claim["model"], counts)
    done.uninformative = sum(
        1
        for row in rows
        for key, cap in zip(row["keys"], row["caps"], strict=True)
        if held.get(key, 0) > cap
    )
    members = {int(k): [str(m) for m in v] for k, v in around["members"].items()}
    others = {
        p.id: p for p in (matching.prepare(guest_from_array(r)) for r in around["candidates"])
    }
    others.update({p.id: p for p in changed})
    at_least = matching.weight_for(FLOOR, model)
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for p, row in zip(changed, rows, strict=False):
        candidates = {m for key in row["keys"] for m in members.get(key, ())} - {p.id}
        for other in sorted(candidates):
            b = others.get(other)
            if b is None:
                continue
            pair = (p.id, other) if p.id < other else (other, p.id)
            if pair in found:
                continue
            done.compared += 1
            suggestion = matching.suggest(model, p, b, FLOOR, at_least)
            if suggestion is not None:
                found[pair] = pair_row(suggestion)
    stored = {(str(r[0]), str(r[1])): r for r in around["pairs"]}
    held_back = await read_held(store, chain_id) if found else set()
    writes = [
        row
        for pair, row in found.items()
        if pair not in held_back and (pair not in stored or not _same(row, stored[pair]))
    ]
    forget = [list(pair) for pair in stored if pair not in found]
    if writes:
        put = await store.call("quality_duplicates_put", p_chain_id=chain_id, p_pairs=writes)
        done.pairs = int(put["pairs"])
    done.pruned = int(
        await store.call(
            "quality_duplicates_done",
            p_chain_id=chain_id,
            p_ids=ids,
            p_forget=forget,
            p_claimed_at=claim["claimed_at"],
        )
    )
    return done
