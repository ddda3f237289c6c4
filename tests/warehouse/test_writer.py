"""The warehouse writer on DuckDB and PostgreSQL: dedup rules, conflicts, concurrency, reads."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime
from typing import Any

import ibis

from splitlab.warehouse import ItemStatus, Warehouse, derive_id, event_fact, exposure_fact
from tests.warehouse.conftest import lookup

ACCEPTED, DUPLICATE = ItemStatus.ACCEPTED, ItemStatus.DUPLICATE
T0 = datetime(2024, 1, 2, tzinfo=UTC)


def count(warehouse: Warehouse, table: str) -> int:
    return int(warehouse.query(f"SELECT count(*) FROM {table}")[0][0])


def statuses(results: list[Any]) -> list[str]:
    return [r.status.value for r in results]


def test_events_are_stored_once_by_id_and_retries_are_duplicates(warehouse: Warehouse) -> None:
    facts = [
        event_fact(unit_id="u1", event_name="purchase", value=10.0, event_id="e1", occurred_at=T0),
        event_fact(unit_id="u2", event_name="purchase", value=5.5, event_id="e2", occurred_at=T0),
        event_fact(unit_id="u1", event_name="purchase", value=99.0, event_id="e1"),  # same id
    ]
    assert statuses(warehouse.write(facts)) == ["accepted", "accepted", "duplicate"]
    assert statuses(warehouse.write(facts)) == ["duplicate"] * 3
    rows = warehouse.query("SELECT event_id, value FROM events ORDER BY event_id")
    assert rows == [("e1", 10.0), ("e2", 5.5)]  # the first write wins


def test_events_without_id_dedup_on_experiment_user_and_type(warehouse: Warehouse) -> None:
    results = warehouse.write_events(
        [
            {"unit_id": "u1", "event_name": "signup", "experiment_key": "checkout"},
            {"unit_id": "u1", "event_name": "signup", "experiment_key": "checkout"},
            {"unit_id": "u1", "event_name": "signup", "experiment_key": "pricing"},
        ]
    )
    assert statuses(results) == ["accepted", "duplicate", "accepted"]
    assert results[0].event_id == derive_id("checkout", "u1", "signup")


def test_exposures_first_wins_and_another_variant_is_a_conflict(warehouse: Warehouse) -> None:
    first = warehouse.record_exposures(
        [
            {
                "experiment_key": "checkout",
                "variant_key": "control",
                "unit_id": "u1",
                "exposed_at": T0,
                "attributes": {"country": "NL"},
            },
            {"experiment_key": "checkout", "variant_key": "control", "unit_id": "u1"},
            {"experiment_key": "checkout", "variant_key": "b", "unit_id": "u2"},
        ]
    )
    assert statuses(first) == ["accepted", "duplicate", "accepted"]
    again = warehouse.record_exposures(
        [
            {"experiment_key": "checkout", "variant_key": "b", "unit_id": "u1"},  # conflict
            {"experiment_key": "checkout", "variant_key": "b", "unit_id": "u1"},  # same again
            {"experiment_key": "checkout", "variant_key": "b", "unit_id": "u2"},
        ]
    )
    assert statuses(again) == ["accepted", "duplicate", "duplicate"]
    assert [r.conflict for r in again] == [True, True, False]
    assert count(warehouse, "exposures") == 2
    assert warehouse.query(
        "SELECT unit_id, variant_key, first_variant_key FROM exposure_conflicts"
    ) == [("u1", "b", "control")]
    # a retry of the conflicting exposure is a duplicate conflict, not a second row
    retry = warehouse.record_exposures(
        [{"experiment_key": "checkout", "variant_key": "b", "unit_id": "u1"}]
    )
    assert statuses(retry) == ["duplicate"] and retry[0].conflict
    assert count(warehouse, "exposure_conflicts") == 1


def test_a_conflict_inside_one_group_is_detected(warehouse: Warehouse) -> None:
    results = warehouse.write(
        [
            exposure_fact(experiment_key="checkout", variant_key="control", unit_id="u9"),
            exposure_fact(experiment_key="checkout", variant_key="b", unit_id="u9"),
        ]
    )
    assert statuses(results) == ["accepted", "accepted"]
    assert [r.conflict for r in results] == [False, True]
    assert count(warehouse, "exposure_conflicts") == 1


def test_eight_concurrent_clients_with_overlapping_batches_store_each_id_once(
    warehouse: Warehouse,
) -> None:
    """Client c sends ids [c*50, c*50+200): each id is sent by up to 4 clients at once."""
    accepted: list[int] = []
    barrier = threading.Barrier(8)

    def client(c: int) -> None:
        barrier.wait()
        for round_ in range(4):
            ids = range(c * 50 + round_ * 50, c * 50 + round_ * 50 + 50)
            facts = [
                event_fact(unit_id=f"u{i}", event_name="click", event_id=f"id-{i}") for i in ids
            ]
            results = warehouse.write(facts)
            accepted.append(sum(r.status is ACCEPTED for r in results))

    threads = [threading.Thread(target=client, args=(c,)) for c in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    distinct = len({c * 50 + k for c in range(8) for k in range(200)})
    assert count(warehouse, "events") == distinct == sum(accepted)
    assert warehouse.query("SELECT count(DISTINCT event_id) FROM events")[0][0] == distinct


def test_async_submit_groups_concurrent_requests(warehouse: Warehouse) -> None:
    assert warehouse.writer is not None

    async def main() -> list[list[Any]]:
        return await asyncio.gather(
            *(
                warehouse.submit([event_fact(unit_id="u", event_name="x", event_id=str(i % 5))])
                for i in range(40)
            )
        )

    before = warehouse.writer.commits
    results = asyncio.run(main())
    assert sum(r[0].status is ACCEPTED for r in results) == 5
    assert warehouse.writer.commits - before < 40  # grouped into fewer transactions


def test_a_cancelled_request_is_still_written_and_the_others_are_answered(
    warehouse: Warehouse,
) -> None:
    """A client that goes away cancels its await, not its write: the group commits and the
    writer settles the other requests of the group (one wake-up of the loop per group)."""

    async def main() -> list[Any]:
        gone = asyncio.ensure_future(
            warehouse.submit([event_fact(unit_id="u", event_name="x", event_id="gone")])
        )
        others = [
            warehouse.submit([event_fact(unit_id="u", event_name="x", event_id=f"stay-{i}")])
            for i in range(5)
        ]
        await asyncio.sleep(0)
        gone.cancel()
        return await asyncio.gather(*others)

    results = asyncio.run(main())
    assert [statuses(r) for r in results] == [["accepted"]] * 5
    assert (
        warehouse.write([event_fact(unit_id="u", event_name="x", event_id="gone")])[0].status
        is DUPLICATE
    )  # the cancelled request's event was stored


def test_exposure_only_groups_and_mixed_groups_are_written_alike(warehouse: Warehouse) -> None:
    """DuckDB writes a group of new exposures (or of new events) as one self-committing
    INSERT and a mixed group in a transaction; the outcomes are the same."""
    exposures = [
        exposure_fact(experiment_key="exp", variant_key="a", unit_id=f"u{i}", exposed_at=T0)
        for i in range(3)
    ]
    assert statuses(warehouse.write(exposures)) == ["accepted"] * 3
    mixed = [
        exposure_fact(experiment_key="exp", variant_key="b", unit_id="u0", exposed_at=T0),
        exposure_fact(experiment_key="exp", variant_key="a", unit_id="u9", exposed_at=T0),
        event_fact(unit_id="u9", event_name="x", event_id="m1"),
    ]
    outcome = warehouse.write(mixed)
    assert statuses(outcome) == ["accepted", "accepted", "accepted"]
    assert outcome[0].conflict
    assert count(warehouse, "exposures") == 4
    assert count(warehouse, "exposure_conflicts") == 1
    assert count(warehouse, "events") == 1


def test_a_failed_transaction_fails_its_requests_and_writes_nothing(warehouse: Warehouse) -> None:
    bad = event_fact(unit_id="u", event_name="x", event_id="ok")._replace(properties="{not json")
    good = event_fact(unit_id="u", event_name="x", event_id="fine")
    try:
        warehouse.write([good, bad])
    except Exception:
        pass
    else:  # pragma: no cover - both engines reject invalid JSON
        raise AssertionError("invalid JSON was accepted")
    assert count(warehouse, "events") == 0
    assert statuses(warehouse.write([good])) == ["accepted"]  # the writer goes on


def test_ibis_tables_and_watermark(warehouse: Warehouse) -> None:
    empty = warehouse.watermark()
    assert (empty.exposures, empty.events, empty.last_ingested_at) == (0, 0, None)
    warehouse.record_exposures(
        [
            {"experiment_key": "checkout", "variant_key": v, "unit_id": f"u{i}", "exposed_at": T0}
            for i, v in enumerate(["control", "b", "b"])
        ]
    )
    warehouse.write_events(
        [{"unit_id": "u1", "event_name": "purchase", "value": 3.0, "event_id": "p1"}]
    )
    mark = warehouse.watermark()
    assert (mark.exposures, mark.events, mark.conflicts) == (3, 1, 0)
    assert mark.last_ingested_at is not None and mark.cache_key() != empty.cache_key()

    exposures = warehouse.exposures_table()
    per_variant = (
        exposures.group_by("variant_key").agg(n=exposures.unit_id.count()).order_by("variant_key")
    )
    assert per_variant.to_pyarrow().to_pylist() == [
        {"variant_key": "b", "n": 2},
        {"variant_key": "control", "n": 1},
    ]
    events = warehouse.events_table()
    joined = exposures.join(events, exposures.unit_id == events.unit_id)
    assert joined.agg(total=joined.value.sum()).to_pyarrow().to_pylist() == [{"total": 3.0}]
    assert isinstance(exposures, ibis.Table)


def test_validated_facts_round_trip_through_the_writer(warehouse: Warehouse) -> None:
    from splitlab.warehouse import parse_item
    from splitlab.warehouse.validation import now_us

    item = {
        "experimentKey": "checkout",
        "variantKey": "b",
        "userKey": "u5",
        "eventType": "exposure",
        "props": {"device": "ios"},
        "occurredAt": "2024-01-03T00:00:00Z",
    }
    fact = parse_item(item, lookup=lookup, now=now_us())
    assert statuses(warehouse.write([fact])) == ["accepted"]
    (row,) = warehouse.query(
        "SELECT experiment_key, variant_key, unit_id, attributes::VARCHAR, source FROM exposures"
    )
    assert row[:3] == ("checkout", "b", "u5") and "ios" in row[3] and row[4] == "api"


def test_groups_of_any_size_report_existing_keys_as_duplicates(warehouse: Warehouse) -> None:
    """Small groups (list parameters, optimistic plain insert on DuckDB) and large ones
    (Arrow staging): a key that exists falls back to the checked write, per item."""
    assert warehouse.writer is not None
    warehouse.write([event_fact(unit_id="u", event_name="x", event_id="old")])
    small = warehouse.write(
        [event_fact(unit_id="u", event_name="x", event_id=i) for i in ("new", "old")]
    )
    assert statuses(small) == ["accepted", "duplicate"]
    if warehouse.dialect == "duckdb":
        assert warehouse.writer.optimistic_misses == 1
    ids = [f"big-{i}" for i in range(600)] + ["old", "big-7"]
    big = warehouse.write([event_fact(unit_id="u", event_name="x", event_id=i) for i in ids])
    assert statuses(big) == ["accepted"] * 600 + ["duplicate", "duplicate"]
    assert count(warehouse, "events") == 602
    rows = warehouse.query("SELECT occurred_at > TIMESTAMPTZ '2020-01-01', source FROM events")
    assert set(rows) == {(True, "api")}


def test_a_large_optimistic_group_that_meets_an_existing_key_is_written_again_checked(
    warehouse: Warehouse,
) -> None:
    assert warehouse.writer is not None
    warehouse.write([event_fact(unit_id="u", event_name="x", event_id="old")])
    ids = [f"big-{i}" for i in range(1000)] + ["old"]
    big = warehouse.write([event_fact(unit_id="u", event_name="x", event_id=i) for i in ids])
    assert statuses(big) == ["accepted"] * 1000 + ["duplicate"]
    assert count(warehouse, "events") == 1001
    if warehouse.dialect == "duckdb":
        assert warehouse.writer.optimistic_misses == 1


def test_a_group_commit_wait_never_delays_a_lone_client(warehouse_url: str) -> None:
    """The writer waits only for as many jobs as its previous group had: one at a time,
    it does not wait at all (each write here would take 0.5 s if it did)."""
    warehouse = Warehouse.open(warehouse_url, max_wait_seconds=0.5)
    try:
        started = time.monotonic()
        for i in range(4):
            warehouse.write([event_fact(unit_id="u", event_name="x", event_id=f"lone-{i}")])
        assert time.monotonic() - started < 1.0
        assert warehouse.writer is not None and warehouse.writer.commits == 4
    finally:
        warehouse.close()


def test_concurrent_clients_are_gathered_into_one_commit_within_the_wait(
    warehouse_url: str,
) -> None:
    warehouse = Warehouse.open(warehouse_url, max_wait_seconds=0.5)
    writer = warehouse.writer
    assert writer is not None
    gate = threading.Event()
    try:
        # hold the writer so that four jobs queue up and form one group
        blocker = threading.Thread(target=writer.run, args=(lambda backend: gate.wait(10),))
        blocker.start()
        first = [
            writer.submit_future([event_fact(unit_id="u", event_name="x", event_id=f"a{i}")])
            for i in range(4)
        ]
        commits = writer.commits  # the blocker commits once the gate opens
        gate.set()
        blocker.join(10)
        for future in first:
            future.result(10)
        assert writer.commits == commits + 2
        # the previous group had several jobs: the next one waits (up to 0.5 s) for as many
        futures = []
        for i in range(4):
            futures.append(
                writer.submit_future([event_fact(unit_id="u", event_name="x", event_id=f"b{i}")])
            )
            time.sleep(0.02)
        assert [f.result(10)[0].status for f in futures] == [ACCEPTED] * 4
        assert writer.commits == commits + 3
    finally:
        warehouse.close()


def test_a_repeated_exposure_of_a_committed_unit_is_answered_without_a_write(
    warehouse: Warehouse,
) -> None:
    """The writer remembers committed exposures: a repeat in the same variant is a duplicate
    with no transaction; one in another variant still goes to the database as a conflict."""
    writer = warehouse.writer
    assert writer is not None
    first = [
        exposure_fact(experiment_key="exp", variant_key="a", unit_id=f"u{i}") for i in range(3)
    ]
    assert statuses(warehouse.write(first)) == ["accepted"] * 3
    commits = writer.commits
    repeat = exposure_fact(experiment_key="exp", variant_key="a", unit_id="u1")
    assert statuses(warehouse.write([repeat])) == ["duplicate"]
    assert statuses(warehouse.write([repeat, first[2]])) == ["duplicate", "duplicate"]
    assert writer.commits == commits and writer.known_repeats == 2
    moved = exposure_fact(experiment_key="exp", variant_key="b", unit_id="u1")
    (conflict,) = warehouse.write([moved])
    assert conflict.status is ACCEPTED and conflict.conflict
    assert writer.commits == commits + 1
    assert count(warehouse, "exposures") == 3
    assert warehouse.query("SELECT unit_id, first_variant_key FROM exposure_conflicts") == [
        ("u1", "a")
    ]
    # the conflicting unit is not remembered as being in the new variant
    (again,) = warehouse.write([moved])
    assert again.status is DUPLICATE and again.conflict


def test_concurrent_repeats_and_new_exposures_store_each_unit_once(warehouse: Warehouse) -> None:
    """Known repeats answered ahead of a group do not change what the group stores."""
    stored = [
        exposure_fact(experiment_key="exp", variant_key="a", unit_id=f"s{i}") for i in range(20)
    ]
    warehouse.write(stored)

    async def main() -> list[list[Any]]:
        return await asyncio.gather(
            *(
                warehouse.submit(
                    [
                        exposure_fact(
                            experiment_key="exp",
                            variant_key="a",
                            unit_id=f"s{i % 20}" if i % 2 else f"n{i}",
                        )
                    ]
                )
                for i in range(40)
            )
        )

    results = [r for (r,) in asyncio.run(main())]
    assert statuses(results) == ["accepted", "duplicate"] * 20
    assert count(warehouse, "exposures") == 40
    assert count(warehouse, "exposure_conflicts") == 0


def test_units_the_writer_forgot_or_never_saw_are_still_deduplicated(
    warehouse_url: str, monkeypatch: Any
) -> None:
    """The memory of committed exposures is bounded, and empty after a restart: a repeat it
    does not know goes to the database and is still a duplicate (or a conflict)."""
    from splitlab.warehouse import writer as writer_module

    monkeypatch.setattr(writer_module, "KNOWN_EXPOSURES", 8)
    opened = Warehouse.open(warehouse_url)
    try:
        facts = [
            exposure_fact(experiment_key="exp", variant_key="a", unit_id=f"u{i}") for i in range(30)
        ]
        for fact in facts:
            assert statuses(opened.write([fact])) == ["accepted"]
        assert opened.writer is not None and len(opened.writer._known) <= 8
        assert statuses(opened.write([facts[0]])) == ["duplicate"]
    finally:
        opened.close()
    reopened = Warehouse.open(warehouse_url)
    try:
        assert statuses(reopened.write([facts[1]])) == ["duplicate"]
        (moved,) = reopened.write([facts[2]._replace(variant_key="b")])
        assert moved.status is ACCEPTED and moved.conflict
        assert count(reopened, "exposures") == 30
    finally:
        reopened.close()
