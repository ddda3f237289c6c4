"""Bucket ranges, variant choice and namespaces, exactly as GrowthBook's SDKs compute them."""

from __future__ import annotations

from collections.abc import Sequence

from splitlab.assignment.hashing import gb_hash

BucketRange = tuple[float, float]

WEIGHT_SUM_TOLERANCE = 0.01


def equal_weights(num_variants: int) -> list[float]:
    """``num_variants`` equal weights (empty for fewer than one variant)."""
    if num_variants < 1:
        return []
    return [1 / num_variants] * num_variants


def bucket_ranges(
    num_variants: int, coverage: float = 1.0, weights: Sequence[float] | None = None
) -> list[BucketRange]:
    """Half-open hash ranges ``[start, end)`` per variant (GrowthBook's ``getBucketRanges``).

    Coverage is clamped to ``[0, 1]``. Weights that are missing, of the wrong length or that
    do not sum to 1 ± 0.01 fall back to equal weights. Each variant keeps its slot
    ``[cumulative, cumulative + w)`` and only its first ``coverage`` share is used, so
    raising coverage later never moves an assigned unit to another variant.
    """
    coverage = min(max(coverage, 0.0), 1.0)
    if weights is None or len(weights) != num_variants:
        weights = equal_weights(num_variants)
    total = sum(weights)
    if total < 1 - WEIGHT_SUM_TOLERANCE or total > 1 + WEIGHT_SUM_TOLERANCE:
        weights = equal_weights(num_variants)
    cumulative = 0.0
    ranges: list[BucketRange] = []
    for weight in weights:
        start = cumulative
        cumulative += weight
        ranges.append((start, start + coverage * weight))
    return ranges


def choose_variant(n: float, ranges: Sequence[BucketRange]) -> int:
    """Index of the first range holding ``n`` (``start <= n < end``), or -1 if none does."""
    for index, (start, end) in enumerate(ranges):
        if start <= n < end:
            return index
    return -1


def namespace_hash(namespace_id: str, unit_id: str) -> float:
    """The unit's position in a namespace: ``hash("__" + namespace_id, unit_id, 1)``."""
    n = gb_hash("__" + namespace_id, unit_id, 1)
    assert n is not None  # version 1 always hashes
    return n


def in_namespace(unit_id: str, namespace_id: str, start: float, end: float) -> bool:
    """Whether the unit falls in the namespace slice ``[start, end)``."""
    return start <= namespace_hash(namespace_id, unit_id) < end
