"""Assignment throughput: bulk (vectorised), local evaluation one unit at a time, HTTP.

Run: ``python benchmarks/bench_assign.py`` (add ``--quick`` for a smoke run).

Figures are the best of several repeats (the usual practice for micro-benchmarks on a
shared machine: the minimum is the least disturbed run); the median is printed too.
No result is cached per unit id: every call hashes its unit from scratch.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import uuid
from collections.abc import Callable

import numpy as np

from splitlab.assignment import (
    ExperimentConfig,
    Namespace,
    VariantConfig,
    assign,
    assign_bulk,
)

TWO_ARMS = ExperimentConfig(
    key="checkout-button",
    variants=(VariantConfig("control", 0.5), VariantConfig("treatment", 0.5)),
)
TARGETED = ExperimentConfig(
    key="pricing-page",
    variants=(
        VariantConfig("control", 0.1),
        VariantConfig("b", 0.3),
        VariantConfig("c", 0.6),
    ),
    coverage=0.9,
    namespace=Namespace("pricing", 0.0, 0.8),
    condition={"country": {"$in": ["NL", "BE", "DE"]}, "plan": {"$ne": "enterprise"}},
)


def repeat(run: Callable[[], int], repeats: int) -> tuple[float, float]:
    """(best, median) items per second over ``repeats`` runs of ``run`` (returns items)."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        items = run()
        rates.append(items / (time.perf_counter() - start))
    return max(rates), statistics.median(rates)


def show(label: str, rates: tuple[float, float], unit: str = "assignments/s") -> None:
    best, median = rates
    print(f"{label:<58} {best:>13,.0f} {unit}  (median {median:,.0f})")


def bench_bulk(n: int, repeats: int) -> None:
    sequential = np.char.add("user-", np.arange(10_000_000, 10_000_000 + n).astype(np.str_))
    uuids = np.array([str(uuid.UUID(int=int(x))) for x in np.arange(n) * 7919 + 1])
    as_list = sequential.tolist()
    show(
        f"bulk, {n:,} ids like 'user-10000000' (numpy array)",
        repeat(lambda: len(assign_bulk(TWO_ARMS, sequential)), repeats),
    )
    show(
        f"bulk, {n:,} UUID ids (numpy array)",
        repeat(lambda: len(assign_bulk(TWO_ARMS, uuids)), repeats),
    )
    show(
        f"bulk, {n:,} ids from a Python list (incl. conversion)",
        repeat(lambda: len(assign_bulk(TWO_ARMS, as_list)), repeats),
    )
    no_condition = ExperimentConfig(
        key=TARGETED.key,
        variants=TARGETED.variants,
        coverage=TARGETED.coverage,
        namespace=TARGETED.namespace,
    )
    show(
        f"bulk, {n:,} ids, 3 arms + coverage + namespace",
        repeat(lambda: len(assign_bulk(no_condition, sequential)), repeats),
    )


def bench_local(n: int, repeats: int) -> None:
    ids = [f"user-{i}" for i in range(10_000_000, 10_000_000 + n)]
    uuids = [str(uuid.UUID(int=i * 7919 + 1)) for i in range(n)]
    countries = ("NL", "BE", "DE", "US")
    attributes = [{"country": countries[i % 4], "plan": "free"} for i in range(n)]

    def plain(unit_ids: list[str]) -> Callable[[], int]:
        def run() -> int:
            config = TWO_ARMS
            for unit in unit_ids:
                assign(config, unit)
            return len(unit_ids)

        return run

    def targeted() -> int:
        config = TARGETED
        for unit, attrs in zip(ids, attributes, strict=True):
            assign(config, unit, attrs)
        return len(ids)

    show("local evaluation, assign() one at a time, 2 arms", repeat(plain(ids), repeats))
    show("local evaluation, assign() one at a time, UUID ids", repeat(plain(uuids), repeats))
    show(
        "local evaluation, + targeting (2 rules) + namespace, 3 arms",
        repeat(targeted, repeats),
    )


def bench_http() -> None:
    """PLACEHOLDER — ``POST /api/assign`` requests/s and p99 latency on loopback.

    To be added by whoever wires ``/api/assign`` (issue #5: target >= 2,000 requests/s,
    p99 <= 50 ms). Start the real server with uvicorn on 127.0.0.1, drive it with
    concurrent httpx clients for a fixed duration, and print requests/s and p99 here.
    No number is reported until then.
    """
    print(f"{'POST /api/assign on loopback':<58} {'not measured yet':>13} (API not wired)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat")
    args = parser.parse_args()
    bulk_n, local_n, repeats = (50_000, 20_000, 1) if args.quick else (1_000_000, 100_000, 5)
    print(
        f"Python {platform.python_version()}, numpy {np.__version__}, "
        f"{platform.machine()}, {platform.processor() or 'cpu'}"
    )
    bench_bulk(bulk_n, repeats)
    bench_local(local_n, repeats)
    bench_http()


if __name__ == "__main__":
    main()
