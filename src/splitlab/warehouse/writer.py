"""The group-commit writer: one thread owns the write connection and commits for everyone.

Requests hand their validated facts to ``submit`` (async) or ``write`` (blocking). The
thread takes every job waiting in the queue (up to ``max_items`` facts, optionally waiting
up to ``max_wait`` seconds for as many jobs as its previous group had), writes them in *one*
transaction, commits, and only then resolves each job's future with its per-item results. So:

* acknowledged means durable — a result exists only after ``COMMIT`` returned;
* deduplication is atomic — one writer, primary keys, and first-occurrence-wins inside a group;
* a failed transaction leaves nothing half-written, and fails only the job that caused it:
  the group is written again in halves (``_isolate``) until the failing job is alone, so one
  request's bad fact never fails another's. The retried jobs are written exactly once — the
  failed transaction was rolled back whole — and in their original order, so the first
  occurrence of a key still wins.

Optimistic groups: a backend with ``key_exists`` (DuckDB) first writes a group with plain
``INSERT``s, assuming every key is new — true for nearly all live traffic and half the cost
of ``ON CONFLICT … RETURNING``. If a key exists the insert raises, the transaction is rolled
back and the group is written again the checked way; after such a miss the next
``CHECKED_AFTER_MISS`` groups go the checked way directly, so duplicate-heavy traffic (retries,
repeated exposures) does not pay twice. A backend with ``autocommit`` (DuckDB) writes an
optimistic group of one kind (only new events, or only new exposures — all ``/api/track``
traffic of one kind) as a single self-committing ``INSERT``, without ``BEGIN``/``COMMIT``.

Repeated exposures: the writer remembers the exposures it committed (key → variant, the last
``KNOWN_EXPOSURES``), and answers a job that only repeats one of them in the same variant as a
duplicate at once, without a statement — most of a page tag's exposures are repeats, and each
used to be an optimistic miss. Anything it does not remember goes to the database as before.

Results reach ``submit`` callers through their own event loop: the writer settles all the
jobs of a group that wait on one loop with a single ``call_soon_threadsafe`` — one wake-up of
the loop per commit instead of one per request, and no ``concurrent.futures`` hand-off.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from functools import partial
from itertools import islice
from typing import Any, Protocol

from splitlab.warehouse.facts import Fact, ItemResult, ItemStatus, Kind, derive_id
from splitlab.warehouse.validation import now_us

log = logging.getLogger(__name__)

ACCEPTED, DUPLICATE = ItemStatus.ACCEPTED, ItemStatus.DUPLICATE
CHECKED_AFTER_MISS = 64
KNOWN_EXPOSURES = 100_000
"""Committed exposures (key → variant) the writer remembers, so that a repeated exposure —
most of a page tag's traffic — is answered without a database round trip (~25 MB)."""
GC_THRESHOLDS = (50_000, 20, 100)
DEFAULT_GC_THRESHOLDS = gc.get_threshold()
"""Cyclic-GC thresholds for a server process (CPython's default is 700, 10, 10)."""


def tune_gc_for_ingestion() -> None:
    """Make the cyclic garbage collector cheap for a server that ingests big batches.

    A 10,000-item batch allocates ~100,000 tracked containers (the decoded JSON, facts,
    results) that live until its commit. With CPython's defaults that triggers hundreds of
    young collections and a full one every batch or two, each scanning every object the
    server built at start-up plus the batches in flight: measured at ~30% of the server's
    time under the batch benchmark (500k events: 2.9 s of GC in 9 s). Freezing the start-up
    objects takes them out of every scan; a larger first threshold makes collections rare
    (memory: at most ~50,000 extra young objects before one runs). Reference counting still
    frees everything that is not in a cycle at once.
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def restore_gc() -> None:
    """Undo ``tune_gc_for_ingestion`` (the frozen objects can be collected again)."""
    gc.unfreeze()
    gc.set_threshold(*DEFAULT_GC_THRESHOLDS)


class Backend(Protocol):
    dialect: str
    key_exists: type[Exception] | None
    """What an insert raises under ``assume_new`` when a key exists (None: never assume)."""
    assume_new: bool
    autocommit: bool
    """A single statement outside ``begin``/``commit`` is atomic and durable on its own."""

    def ensure_schema(self) -> None: ...
    def begin(self) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def insert_events(self, facts: Sequence[Fact], ingested_us: int) -> set[str]: ...
    def insert_exposures(self, facts: Sequence[Fact], ingested_us: int) -> set[str]: ...
    def exposure_variants(self, keys: Sequence[str]) -> dict[str, str]: ...
    def insert_conflicts(
        self, conflicts: Sequence[tuple[str, Fact, str]], ingested_us: int
    ) -> set[str]: ...
    def close(self) -> None: ...


class _Job:
    """Facts to write (or a bulk ``fn``) and where the outcome goes: a thread-safe
    ``Future``, or — for ``submit`` — an asyncio future settled on its own event loop."""

    __slots__ = ("facts", "fn", "future", "loop")

    def __init__(
        self,
        facts: Sequence[Fact],
        fn: Callable[[Backend], Any] | None = None,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.facts = facts
        self.fn = fn
        self.loop = loop
        self.future: Future[Any] | asyncio.Future[Any] = (
            Future() if loop is None else loop.create_future()
        )


Outcome = tuple[Future[Any] | asyncio.Future[Any], Any, BaseException | None]
"""A job's future, its result and its error (None when it succeeded)."""


def _settle(outcomes: list[Outcome]) -> None:
    """Resolve futures; asyncio ones run this on their event loop, once per group."""
    for future, result, error in outcomes:
        if future.done():  # the waiting caller was cancelled (e.g. the client went away)
            continue
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)


_STOP = object()


def write_group(backend: Backend, facts: Sequence[Fact]) -> list[ItemResult]:
    """Write ``facts`` inside the caller's transaction; the result for each, in order.

    The first occurrence of a key in the group is the one inserted; later ones are
    duplicates (or conflicts, for an exposure to another variant).
    """
    ingested = now_us()
    keys = [fact.key for fact in facts]
    # later items overwrite earlier ones, so each key keeps the index of its first occurrence
    first = dict(zip(reversed(keys), range(len(keys) - 1, -1, -1), strict=True))
    unique = len(first) == len(facts)
    events = [
        fact
        for index, fact in enumerate(facts)
        if fact.kind is Kind.EVENT and (unique or first[fact.key] == index)
    ]
    exposures = [
        fact
        for index, fact in enumerate(facts)
        if fact.kind is Kind.EXPOSURE and (unique or first[fact.key] == index)
    ]
    new_events = backend.insert_events(events, ingested)
    new_exposures = backend.insert_exposures(exposures, ingested)
    if unique and not exposures and len(new_events) == len(facts):
        # the common batch: every item a new event (no per-item checks needed)
        return [ItemResult._make((ACCEPTED, fact.event_id, False)) for fact in facts]
    stored = backend.exposure_variants([f.key for f in exposures if f.key not in new_exposures])

    results: list[ItemResult] = []
    conflicts: dict[str, tuple[str, Fact, str]] = {}
    conflict_of: dict[int, str] = {}
    for index, fact in enumerate(facts):
        if fact.kind is Kind.EVENT:
            fresh = first[fact.key] == index and fact.key in new_events
            results.append(ItemResult(ACCEPTED if fresh else DUPLICATE, fact.event_id))
            continue
        if first[fact.key] == index and fact.key in new_exposures:
            results.append(ItemResult(ACCEPTED, fact.event_id))
            continue
        # a repeat: same variant is a duplicate, another variant a conflict
        winner = stored.get(fact.key) or facts[first[fact.key]].variant_key
        if fact.variant_key == winner:
            results.append(ItemResult(DUPLICATE, fact.event_id))
            continue
        assert fact.experiment_key is not None and fact.variant_key is not None
        conflict_id = derive_id(fact.experiment_key, fact.unit_id, fact.variant_key)
        conflicts.setdefault(conflict_id, (conflict_id, fact, winner or ""))
        conflict_of[index] = conflict_id
        results.append(ItemResult(DUPLICATE, fact.event_id, conflict=True))
    if conflicts:
        new_conflicts = backend.insert_conflicts(list(conflicts.values()), ingested)
        for index, conflict_id in conflict_of.items():
            if conflict_id in new_conflicts and conflicts[conflict_id][1] is facts[index]:
                results[index] = ItemResult(ACCEPTED, facts[index].event_id, conflict=True)
    return results


class GroupCommitWriter:
    """A background thread batching concurrent writes into one transaction each."""

    def __init__(
        self,
        backend: Backend,
        *,
        max_items: int = 50_000,
        max_wait: float = 0.0,
        name: str = "splitlab-warehouse-writer",
    ) -> None:
        self.backend = backend
        self.max_items = max_items
        self.max_wait = max_wait
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False
        self._stopped = False
        self._lock = threading.Lock()
        self.commits = 0
        self.items = 0
        self.optimistic_misses = 0
        self.isolations = 0
        """Failed groups written again in halves to find the job that failed them."""
        self._checked_groups = 0
        self._last_group_jobs = 1
        self._known: dict[str, str] = {}
        """Exposure keys committed with their variant (never wrong: exposures are append-only
        and the first one counts); bounded by ``KNOWN_EXPOSURES``, oldest forgotten first."""
        self.known_repeats = 0

    # ------------------------------------------------------------------ public

    @property
    def started(self) -> bool:
        """Whether the writer thread was started (jobs then run on it, one at a time)."""
        return self._started

    def start(self) -> None:
        with self._lock:
            if not self._started:
                self._started = True
                self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish every queued job, then stop the thread."""
        with self._lock:
            if not self._started or self._stopped:
                self._stopped = True
                return
            self._stopped = True
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _enqueue(self, job: _Job) -> Future[Any] | asyncio.Future[Any]:
        if self._stopped:
            raise RuntimeError("the warehouse writer is stopped")
        self.start()
        self._queue.put(job)
        return job.future

    def submit_future(self, facts: Sequence[Fact]) -> Future[list[ItemResult]]:
        job = _Job(facts)
        self._enqueue(job)
        return job.future  # type: ignore[return-value]

    async def submit(self, facts: Sequence[Fact]) -> list[ItemResult]:
        """Write ``facts``; returns their results once the transaction has committed.

        The writer settles every job of a group that waits on the same event loop with one
        ``call_soon_threadsafe`` (one wake-up of the loop per commit, not one per request).
        """
        if not facts:
            return []
        job = _Job(facts, loop=asyncio.get_running_loop())
        future = job.future
        assert isinstance(future, asyncio.Future)
        self._enqueue(job)
        return await future

    def write(self, facts: Sequence[Fact], timeout: float | None = None) -> list[ItemResult]:
        """Blocking ``submit`` for threads and scripts (simulator, CLI, sync routes)."""
        if not facts:
            return []
        return self.submit_future(facts).result(timeout)

    def run(self, fn: Callable[[Backend], Any], timeout: float | None = None) -> Any:
        """Run ``fn(backend)`` alone in its own transaction on the writer thread (bulk imports)."""
        job = _Job((), fn)
        self._enqueue(job)
        return job.future.result(timeout)  # type: ignore[call-arg]

    # ------------------------------------------------------------------ thread

    def _collect(self, first: _Job) -> tuple[list[_Job], bool]:
        """``first`` and every job queued behind it (up to ``max_items`` facts).

        With ``max_wait``, the writer waits up to that long for as many jobs as the previous
        group had: concurrent clients that were answered together tend to come back
        together, and one commit for all of them costs about what one for half of them
        does. A lone client (groups of one) never waits; jobs already queued never wait.
        """
        jobs, count, stop = [first], len(first.facts), False
        deadline = time.monotonic() + self.max_wait
        while count < self.max_items:
            try:
                remaining = deadline - time.monotonic()
                job = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0 and len(jobs) < self._last_group_jobs
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
            if job is _STOP:
                stop = True
                break
            if job.fn is not None:  # a bulk job runs alone: put it back for the next round
                self._queue.put(job)
                break
            jobs.append(job)
            count += len(job.facts)
        self._last_group_jobs = len(jobs)
        return jobs, stop

    def _run(self) -> None:
        stop = False
        while not stop:
            job = self._queue.get()
            if job is _STOP:
                break
            if job.fn is not None:
                self._transaction([job], partial(job.fn, self.backend), single=True)
                continue
            jobs, stop = self._collect(job)
            jobs = self._answer_known_repeats(jobs)
            if not jobs:
                continue
            facts = [fact for j in jobs for fact in j.facts]
            if not self._autocommit_group(jobs, facts):
                self._transaction(jobs, partial(self._write_group, facts))

    def _autocommit_group(self, jobs: list[_Job], facts: Sequence[Fact]) -> bool:
        """Write a group of new events (or new exposures) with one plain ``INSERT`` that
        commits on its own; False when the group must go the transactional way.

        A backend with ``autocommit`` (DuckDB) makes a single statement atomic and durable
        by itself, and the explicit ``BEGIN``/``COMMIT`` would cost two more statements —
        each a fixed ~0.2 ms there, most of a small group's time (``/api/track`` traffic).
        If a key exists the statement fails as a whole (nothing was written) and the group
        goes the checked way, as for any optimistic miss.
        """
        backend = self.backend
        if not backend.autocommit or backend.key_exists is None or self._checked_groups > 0:
            return False
        kind = facts[0].kind
        if any(fact.kind is not kind for fact in facts):
            return False
        if len({fact.key for fact in facts}) != len(facts):
            return False
        insert = backend.insert_events if kind is Kind.EVENT else backend.insert_exposures
        backend.assume_new = True
        try:
            insert(facts, now_us())
        except backend.key_exists:
            self._missed()
            return False
        except Exception as exc:
            # one statement: nothing was written
            if len(jobs) > 1:
                self._isolate(jobs, exc)
                return True
            log.exception("warehouse write failed; 1 job not written")
            self._resolve(jobs, [(None, exc)])
            return True
        except BaseException as exc:
            log.exception("warehouse write failed; %d job(s) not written", len(jobs))
            self._resolve(jobs, [(None, exc)] * len(jobs))
            return True
        finally:
            backend.assume_new = False
        self._finish(jobs, [ItemResult._make((ACCEPTED, fact.event_id, False)) for fact in facts])
        return True

    def _missed(self) -> None:
        """An optimistic write met an existing key: the next groups go the checked way."""
        self.optimistic_misses += 1
        self._checked_groups = CHECKED_AFTER_MISS

    def _write_group(self, facts: Sequence[Fact]) -> list[ItemResult]:
        """``write_group``, optimistically first where the backend supports it."""
        backend = self.backend
        if backend.key_exists is None or self._checked_groups > 0:
            self._checked_groups = max(0, self._checked_groups - 1)
            return write_group(backend, facts)
        backend.assume_new = True
        try:
            return write_group(backend, facts)
        except backend.key_exists:
            self._missed()
            backend.rollback()
            backend.begin()
        finally:
            backend.assume_new = False
        return write_group(backend, facts)

    def _transaction(self, jobs: list[_Job], body: Callable[[], Any], single: bool = False) -> None:
        try:
            self.backend.begin()
            outcome = body()
            self.backend.commit()
        except BaseException as exc:
            try:
                self.backend.rollback()
            except Exception:  # the connection itself may be gone
                log.exception("rollback failed")
            if len(jobs) > 1 and isinstance(exc, Exception):
                self._isolate(jobs, exc)
                return
            log.exception("warehouse write failed; %d job(s) rolled back", len(jobs))
            self._resolve(jobs, [(None, exc)] * len(jobs))
            return
        if single:
            self.commits += 1
            self._resolve(jobs, [(outcome, None)])
            return
        self._finish(jobs, outcome)

    def _isolate(self, jobs: list[_Job], error: Exception) -> None:
        """A group of several jobs failed and wrote nothing: write each half in its own
        transaction, halving again whichever fails, so only the failing job(s) get the error
        — ``2·log2(n)`` transactions for one bad job among ``n``. Halves go in order, so the
        first occurrence of a key is still the one accepted."""
        self.isolations += 1
        log.warning(
            "warehouse write of %d jobs failed (%s: %s); writing them apart",
            len(jobs),
            type(error).__name__,
            error,
        )
        middle = len(jobs) // 2
        for part in (jobs[:middle], jobs[middle:]):
            facts = [fact for job in part for fact in job.facts]
            self._transaction(part, partial(self._write_group, facts))

    def _answer_known_repeats(self, jobs: list[_Job]) -> list[_Job]:
        """Answer the jobs that only repeat exposures already committed with the same variant
        (duplicates, nothing to write: their row is durable); the other jobs, in order.

        Without this, each repeat in a group is an optimistic miss that sends the next
        ``CHECKED_AFTER_MISS`` groups the checked way (``ON CONFLICT … RETURNING`` plus a
        lookup of the stored variants), which made mixed traffic several times slower.
        A repeat in another variant (a conflict) still goes to the database.
        """
        known = self._known
        if not known:
            return jobs
        rest: list[_Job] = []
        answered: list[_Job] = []
        for job in jobs:
            facts = job.facts
            if facts and all(
                fact.kind is Kind.EXPOSURE and known.get(fact.key) == fact.variant_key
                for fact in facts
            ):
                answered.append(job)
            else:
                rest.append(job)
        if answered:
            self.known_repeats += len(answered)
            self._resolve(
                answered,
                [
                    ([ItemResult(DUPLICATE, fact.event_id) for fact in job.facts], None)
                    for job in answered
                ],
            )
        return rest

    def _remember(self, jobs: list[_Job], outcome: list[ItemResult]) -> None:
        """Keep the exposures of a committed group: accepted, or a duplicate of the same
        variant (a conflict's stored variant is not in its result, so it is left out)."""
        known = self._known
        facts = jobs[0].facts if len(jobs) == 1 else [fact for job in jobs for fact in job.facts]
        for fact, result in zip(facts, outcome, strict=True):
            if fact.kind is Kind.EXPOSURE and not result.conflict:
                known[fact.key] = fact.variant_key  # type: ignore[assignment]
        if len(known) > KNOWN_EXPOSURES:
            for key in list(islice(known, len(known) - KNOWN_EXPOSURES * 3 // 4)):
                del known[key]

    def _finish(self, jobs: list[_Job], outcome: list[ItemResult]) -> None:
        """A group committed: hand each job its slice of the results."""
        self.commits += 1
        self.items += len(outcome)
        self._remember(jobs, outcome)
        parts: list[tuple[Any, BaseException | None]] = []
        start = 0
        for job in jobs:
            end = start + len(job.facts)
            parts.append((outcome[start:end], None))
            start = end
        self._resolve(jobs, parts)

    @staticmethod
    def _resolve(jobs: list[_Job], parts: list[tuple[Any, BaseException | None]]) -> None:
        """Hand each job its (result, error): thread futures directly, asyncio futures in
        one batch per event loop."""
        direct: list[Outcome] = []
        by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
        for job, (result, error) in zip(jobs, parts, strict=True):
            outcomes = direct if job.loop is None else by_loop.setdefault(job.loop, [])
            outcomes.append((job.future, result, error))
        _settle(direct)
        for loop, outcomes in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, outcomes)
            except RuntimeError:  # that loop is closed: nobody is waiting any more
                log.warning("%d write result(s) for a closed event loop dropped", len(outcomes))
