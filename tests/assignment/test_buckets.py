"""Bucket ranges, variant choice and namespaces."""

from __future__ import annotations

import pytest

from splitlab.assignment import bucket_ranges, choose_variant, gb_hash, in_namespace
from splitlab.assignment.buckets import namespace_hash

# The "getBucketRange" cases of GrowthBook's shared SDK tests (packages/sdk-js/test/
# cases.json): (num_variants, coverage, weights) -> ranges.
GROWTHBOOK_BUCKET_RANGES = [
    ("normal 50/50", (2, 1, None), [(0, 0.5), (0.5, 1)]),
    ("reduced coverage", (2, 0.5, None), [(0, 0.25), (0.5, 0.75)]),
    ("zero coverage", (2, 0, None), [(0, 0), (0.5, 0.5)]),
    ("4 variations", (4, 1, None), [(0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1)]),
    ("uneven weights", (2, 1, [0.4, 0.6]), [(0, 0.4), (0.4, 1)]),
    ("uneven, 3 variations", (3, 1, [0.2, 0.3, 0.5]), [(0, 0.2), (0.2, 0.5), (0.5, 1)]),
    ("uneven, reduced coverage", (3, 0.2, [0.2, 0.3, 0.5]), [(0, 0.04), (0.2, 0.26), (0.5, 0.6)]),
    ("negative coverage", (2, -0.2, None), [(0, 0), (0.5, 0.5)]),
    ("coverage above 1", (2, 1.5, None), [(0, 0.5), (0.5, 1)]),
    ("weights sum below 1", (2, 1, [0.4, 0.1]), [(0, 0.5), (0.5, 1)]),
    ("weights sum above 1", (2, 1, [0.7, 0.6]), [(0, 0.5), (0.5, 1)]),
    (
        "wrong weights length",
        (4, 1, [0.4, 0.4, 0.2]),
        [(0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1)],
    ),
    ("weights sum almost 1", (2, 1, [0.4, 0.5999]), [(0, 0.4), (0.4, 0.9999)]),
]


@pytest.mark.parametrize(
    ("args", "expected"),
    [pytest.param(args, expected, id=name) for name, args, expected in GROWTHBOOK_BUCKET_RANGES],
)
def test_growthbook_bucket_ranges(args: tuple, expected: list[tuple[float, float]]) -> None:
    ranges = bucket_ranges(*args)
    assert len(ranges) == len(expected)
    for (start, end), (want_start, want_end) in zip(ranges, expected, strict=True):
        assert start == pytest.approx(want_start, abs=1e-12)
        assert end == pytest.approx(want_end, abs=1e-12)


def test_ten_thirty_sixty_ranges_are_exact_floats() -> None:
    # 0.1 + 0.3 is 0.4 in binary floating point; both SDKs compute the same doubles.
    assert bucket_ranges(3, 1, [0.1, 0.3, 0.6]) == [(0, 0.1), (0.1, 0.4), (0.4, 1.0)]


EVEN = [(0.0, 0.5), (0.5, 1.0)]
REDUCED = [(0.0, 0.25), (0.5, 0.75)]
WITH_EMPTY = [(0.0, 0.5), (0.5, 0.5), (0.5, 1.0)]


@pytest.mark.parametrize(
    ("n", "ranges", "expected"),
    [
        (0.2, EVEN, 0),
        (0.6, EVEN, 1),
        (0.4, EVEN, 0),
        (0.8, EVEN, 1),
        (0.0, EVEN, 0),
        (0.5, EVEN, 1),  # ranges are half-open: 0.5 belongs to the second
        (0.2, REDUCED, 0),
        (0.6, REDUCED, 1),
        (0.4, REDUCED, -1),
        (0.8, REDUCED, -1),
        (0.5, WITH_EMPTY, 2),  # an empty range never matches
        (0.9999, [(0.0, 0.4), (0.4, 0.9999)], -1),
    ],
)
def test_choose_variant(n: float, ranges: list[tuple[float, float]], expected: int) -> None:
    assert choose_variant(n, ranges) == expected


def test_growthbook_experiment_cases() -> None:
    """End-to-end cases from GrowthBook's shared tests (seed = experiment key, version 1)."""
    # cases.json "empty experiment rule - a/b/c": key "feature", three equal variations.
    ranges = bucket_ranges(3)
    for unit, bucket, variant in [("123", 0.863, 2), ("456", 0.178, 0), ("fds", 0.514, 1)]:
        assert gb_hash("feature", unit, 1) == bucket
        assert choose_variant(bucket, ranges) == variant
    # JS SDK test "coverage": key "my-test", coverage 0.4, users "1".."9".
    reduced = bucket_ranges(2, 0.4)
    got = [choose_variant(gb_hash("my-test", str(i), 1), reduced) for i in range(1, 10)]
    assert got == [-1, 0, 0, -1, 1, -1, 0, 1, -1]
    # cases.json "creates experiments properly": seed "feature", version 2, unit "123".
    assert gb_hash("feature", "123", 2) == 0.5231


def test_namespace() -> None:
    n = namespace_hash("pricing", "123")
    assert n == gb_hash("__pricing", "123", 1)
    # cases.json "skips experiment on namespace": ["pricing", 0, 0.01] excludes unit "123".
    assert not in_namespace("123", "pricing", 0, 0.01)
    assert in_namespace("123", "pricing", 0, 1)
    # Half-open slices: a unit is in exactly one of two adjacent slices.
    for unit in (f"u{i}" for i in range(200)):
        position = namespace_hash("ns", unit)
        assert in_namespace(unit, "ns", 0, position) is False
        assert in_namespace(unit, "ns", position, 1) is True
