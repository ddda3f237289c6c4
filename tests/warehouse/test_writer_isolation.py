"""A group whose transaction fails fails only the job that caused it; the others commit, each
exactly once, on DuckDB and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import pytest

from splitlab.warehouse import ItemStatus, Warehouse, event_fact, exposure_fact
from splitlab.warehouse.facts import Fact
from splitlab.warehouse.writer import GroupCommitWriter


def event(event_id: str) -> Fact:
    return event_fact(unit_id="u", event_name="x", event_id=event_id)


def queue_as_one_group(writer: GroupCommitWriter, jobs: list[list[Fact]]) -> list[Future[Any]]:
    """Submit ``jobs`` while the writer is held, so that they are written as one group."""
    entered, gate = threading.Event(), threading.Event()

    def hold(backend: Any) -> None:
        entered.set()
        gate.wait(10)

    blocker = threading.Thread(target=writer.run, args=(hold,))
    blocker.start()
    assert entered.wait(10)
    futures = [writer.submit_future(job) for job in jobs]
    gate.set()
    blocker.join(10)
    return futures


def stored_ids(warehouse: Warehouse) -> dict[str, int]:
    rows = warehouse.query("SELECT event_id, count(*) FROM events GROUP BY event_id")
    return {str(event_id): int(n) for event_id, n in rows}


def test_an_injected_failure_fails_only_its_job(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer, backend = warehouse.writer, warehouse._backend
    assert writer is not None and backend is not None
    real_insert = backend.insert_events

    def insert_events(facts: Sequence[Fact], ingested_us: int) -> set[str]:
        if any(fact.event_id == "poison" for fact in facts):
            raise RuntimeError("injected failure")
        return real_insert(facts, ingested_us)

    monkeypatch.setattr(backend, "insert_events", insert_events)
    warehouse.write([event("existing")])

    jobs = [[event(f"j{i}-a"), event(f"j{i}-b")] for i in range(9)]
    jobs[4] = [event("j4-a"), event("poison")]
    jobs[1].append(event("shared"))
    jobs[7].append(event("shared"))  # the same id again later in the group
    jobs[2].append(event("existing"))  # written before
    jobs[5].append(exposure_fact(experiment_key="e", variant_key="a", unit_id="u"))
    isolations = writer.isolations
    futures = queue_as_one_group(writer, jobs)

    with pytest.raises(RuntimeError, match="injected failure"):
        futures[4].result(10)
    results = {i: [r.status for r in f.result(10)] for i, f in enumerate(futures) if i != 4}
    accepted, duplicate = ItemStatus.ACCEPTED, ItemStatus.DUPLICATE
    assert results[1] == [accepted] * 3
    assert results[7] == [accepted, accepted, duplicate]  # the first occurrence still wins
    assert results[2] == [accepted, accepted, duplicate]
    assert results[5] == [accepted] * 3
    assert all(results[i] == [accepted] * 2 for i in (0, 3, 6, 8))
    assert writer.isolations > isolations

    expected = {f"j{i}-{x}" for i in range(9) if i != 4 for x in "ab"} | {"shared", "existing"}
    assert stored_ids(warehouse) == dict.fromkeys(expected, 1)  # nothing of job 4, all once
    assert int(warehouse.query("SELECT count(*) FROM exposures")[0][0]) == 1
    assert warehouse.write([event("after")])[0].status is accepted  # the writer goes on


def test_a_fact_the_database_refuses_fails_only_its_job(warehouse: Warehouse) -> None:
    """A real failure inside the database (JSON it cannot parse), in a group of new events —
    on DuckDB the self-committing single-INSERT path, on PostgreSQL a transaction."""
    writer = warehouse.writer
    assert writer is not None
    broken = event("broken")._replace(properties="{not json")
    jobs = [[event(f"k{i}")] for i in range(6)] + [[event("k-with-bad"), broken]]
    jobs += [[event(f"m{i}")] for i in range(6)]
    futures = queue_as_one_group(writer, jobs)

    with pytest.raises(Exception):  # noqa: B017 - each engine raises its own error type
        futures[6].result(10)
    for index, future in enumerate(futures):
        if index != 6:
            assert [r.status for r in future.result(10)] == [ItemStatus.ACCEPTED]
    expected = {f"k{i}" for i in range(6)} | {f"m{i}" for i in range(6)}
    assert stored_ids(warehouse) == dict.fromkeys(expected, 1)
