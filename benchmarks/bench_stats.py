"""Throughput of splitlab.stats on one vectorised call per function.

Run:  .venv/bin/python benchmarks/bench_stats.py

Each figure is the median of several timed runs after a warm-up, on arrays of ~1,000,000
comparisons (10,000 parameter sets for sample size).  Targets (2-core machine):
Welch/z with relative CIs ≥ 1,000,000/s; sequential and Bayesian ≥ 200,000/s;
sample size for 10,000 parameter sets ≤ 0.1 s.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np

from splitlab.stats import (
    SampleStats,
    bayesian_test,
    sample_size_means,
    sample_size_proportions,
    sequential_test,
    welch_ttest,
    ztest_proportions,
)

COMPARISONS = 1_000_000
PARAMETER_SETS = 10_000
REPEATS = 7


def median_seconds(call: Callable[[], object]) -> float:
    call()  # warm-up
    timings = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        call()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def arms(rng: np.random.Generator, binary: bool) -> tuple[SampleStats, SampleStats]:
    def one() -> SampleStats:
        n = rng.integers(1_000, 100_000, COMPARISONS).astype(np.float64)
        if binary:
            successes = rng.binomial(n.astype(np.int64), 0.1).astype(np.float64)
            return SampleStats(n, successes, successes)
        mean = rng.uniform(5.0, 6.0, COMPARISONS)
        variance = rng.uniform(1.0, 4.0, COMPARISONS)
        total = mean * n
        return SampleStats(n, total, variance * (n - 1) + total * total / n)

    return one(), one()


def main() -> None:
    rng = np.random.default_rng(0)
    continuous = arms(rng, binary=False)
    binary = arms(rng, binary=True)
    rows: list[tuple[str, float, float, str]] = []

    def rate(name: str, call: Callable[[], object], target: float) -> None:
        seconds = median_seconds(call)
        per_second = COMPARISONS / seconds
        rows.append((name, seconds, per_second, "ok" if per_second >= target else "BELOW TARGET"))

    rate("welch_ttest (abs + rel CI)", lambda: welch_ttest(*continuous), 1_000_000)
    rate("ztest_proportions (abs + rel CI)", lambda: ztest_proportions(*binary), 1_000_000)
    rate("sequential_test (CS + p-value)", lambda: sequential_test(*continuous), 200_000)
    rate("bayesian_test (relative)", lambda: bayesian_test(*continuous), 200_000)

    print(f"splitlab.stats benchmark: {COMPARISONS:,} comparisons per call, median of {REPEATS}")
    for name, seconds, per_second, verdict in rows:
        print(f"  {name:34s} {seconds * 1e3:8.1f} ms  {per_second:14,.0f} comparisons/s  {verdict}")

    baseline = rng.uniform(0.01, 0.5, PARAMETER_SETS)
    mde = rng.uniform(0.05, 0.3, PARAMETER_SETS) * baseline
    power = rng.uniform(0.7, 0.95, PARAMETER_SETS)
    std = rng.uniform(0.5, 5.0, PARAMETER_SETS)
    for name, call in (
        (
            "sample_size_proportions",
            lambda: sample_size_proportions(baseline, mde, power=power),
        ),
        ("sample_size_means", lambda: sample_size_means(std, mde * std, power=power)),
    ):
        seconds = median_seconds(call)
        verdict = "ok" if seconds <= 0.1 else "ABOVE TARGET"
        print(
            f"  {name:34s} {seconds * 1e3:8.2f} ms  for {PARAMETER_SETS:,} parameter sets"
            f"  (target ≤ 100 ms)  {verdict}"
        )


if __name__ == "__main__":
    main()
