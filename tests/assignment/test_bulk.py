"""assign_bulk: identical to assign unit by unit, uniform, independent across seeds."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from splitlab.assignment import (
    REASONS,
    ExperimentConfig,
    Holdout,
    InMemoryStickyStore,
    Namespace,
    VariantConfig,
    assign,
    assign_bulk,
    gb_hash,
)
from splitlab.assignment.vectorized import CodeUnits, hash_many


def variants(*weights: float) -> tuple[VariantConfig, ...]:
    return tuple(VariantConfig(f"v{i}", w, {"i": i}) for i, w in enumerate(weights))


def assert_bulk_equals_scalar(
    cfg: ExperimentConfig,
    ids: list[str],
    attributes: list[dict[str, Any]] | None = None,
    sticky: InMemoryStickyStore | None = None,
) -> None:
    prefetched = sticky.assignments(cfg.key, cfg.effective_seed) if sticky else None
    bulk = assign_bulk(cfg, ids, attributes, sticky_assignments=prefetched)
    got_variants, got_reasons = bulk.variants(), bulk.reasons()
    for i, unit in enumerate(ids):
        # Writes by the scalar call only add entries for units it just assigned, which
        # cannot change the answer for any other unit.
        expected = assign(cfg, unit, attributes[i] if attributes else None, sticky=sticky)
        assert (got_variants[i], got_reasons[i]) == (expected.variant, expected.reason), unit
        if expected.bucket is None:
            assert math.isnan(bulk.bucket[i])
        else:
            assert bulk.bucket[i] == expected.bucket
    assert bulk.in_experiment.tolist() == [v is not None for v in got_variants]


MIXED_IDS = (
    [f"user-{i}" for i in range(500)]
    + [f"{i:032x}" for i in range(0, 10**30, 10**28)]
    + ["", "a", "é", "ユーザー-17", "😀", "x😀y𝄞z", "\ud800", "0", "9" * 40, "user-1"]
)


@pytest.mark.parametrize("hash_version", [1, 2])
def test_bulk_hash_equals_scalar(hash_version: int) -> None:
    units = CodeUnits.from_ids(MIXED_IDS)
    for seed in ("", "seed", "__ns", "sééd😀"):
        got = hash_many(seed, units, hash_version)
        assert got is not None
        assert got.tolist() == [gb_hash(seed, u, hash_version) for u in MIXED_IDS]
    assert hash_many("seed", units, 99) is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=12), max_size=40), st.text(max_size=6), st.sampled_from([1, 2]))
def test_bulk_hash_equals_scalar_on_arbitrary_text(ids: list[str], seed: str, version: int) -> None:
    got = hash_many(seed, CodeUnits.from_ids(ids), version)
    assert got is not None
    assert got.tolist() == [gb_hash(seed, u, version) for u in ids]


@pytest.mark.parametrize(
    "cfg",
    [
        ExperimentConfig(key="plain", variants=variants(0.5, 0.5)),
        ExperimentConfig(key="v1", variants=variants(0.2, 0.3, 0.5), hash_version=1),
        ExperimentConfig(key="cov", variants=variants(0.1, 0.3, 0.6), coverage=0.35),
        ExperimentConfig(key="zero", variants=variants(0.5, 0.5), coverage=0.0),
        ExperimentConfig(key="bad-weights", variants=variants(0.7, 0.6)),
        ExperimentConfig(key="empty-arm", variants=variants(0.5, 0.0, 0.5)),
        ExperimentConfig(
            key="all",
            seed="s",
            variants=variants(0.4, 0.6),
            coverage=0.8,
            namespace=Namespace("ns", 0.1, 0.7),
            holdout=Holdout("h", 0.1),
            forced_variants={"user-3": "v1", "😀": "v0"},
        ),
        ExperimentConfig(key="inactive", variants=variants(0.5, 0.5), active=False),
        ExperimentConfig(key="v99", variants=variants(0.5, 0.5), hash_version=99),
    ],
    ids=lambda c: c.key,
)
def test_bulk_equals_scalar(cfg: ExperimentConfig) -> None:
    assert_bulk_equals_scalar(cfg, MIXED_IDS)


def test_bulk_targeting_with_rows_and_columns() -> None:
    cfg = ExperimentConfig(
        key="t", variants=variants(0.5, 0.5), condition={"country": {"$in": ["NL", "BE"]}}
    )
    ids = [f"user-{i}" for i in range(300)]
    countries = np.array(["NL", "DE", "BE"])[np.arange(300) % 3]
    rows = [{"country": c} for c in countries.tolist()]
    assert_bulk_equals_scalar(cfg, ids, attributes=rows)
    by_rows = assign_bulk(cfg, ids, rows)
    by_columns = assign_bulk(cfg, ids, {"country": countries})
    assert by_rows.reasons().tolist() == by_columns.reasons().tolist()
    assert (by_rows.reasons() == "not_targeted").sum() == 100
    assert (assign_bulk(cfg, ids).reasons() == "not_targeted").all()
    with pytest.raises(ValueError, match="values"):
        assign_bulk(cfg, ids, {"country": countries[:10]})


def test_bulk_honours_prefetched_sticky_assignments() -> None:
    store = InMemoryStickyStore()
    before = ExperimentConfig(key="s", variants=variants(0.5, 0.5))
    ids = [f"user-{i}" for i in range(400)]
    for unit in ids[:200]:
        assign(before, unit, sticky=store)
    after = before.with_weights([0.05, 0.95])
    bulk = assign_bulk(after, ids, sticky_assignments=store.assignments("s", "s"))
    assert (bulk.reasons()[:200] == "sticky").all()
    assert (bulk.reasons()[200:] == "assigned").all()
    assert_bulk_equals_scalar(after, ids, sticky=store)  # (the scalar calls fill the store)


def test_bulk_accepts_none_and_object_arrays() -> None:
    cfg = ExperimentConfig(key="n", variants=variants(0.5, 0.5))
    bulk = assign_bulk(cfg, np.array(["a", None, "", "b"], dtype=object))
    assert bulk.reasons().tolist() == ["assigned", "missing_unit", "missing_unit", "assigned"]
    assert len(assign_bulk(cfg, [])) == 0
    assert bulk.counts() == {
        "v0": int((bulk.variant_index == 0).sum()),
        "v1": int((bulk.variant_index == 1).sum()),
    }
    assert set(bulk.reasons().tolist()) <= set(REASONS)


@pytest.fixture(scope="module")
def million() -> np.ndarray:
    return np.char.add("user-", np.arange(1_000_000).astype(np.str_))


@pytest.mark.parametrize("weights", [(0.5, 0.5), (0.1, 0.3, 0.6)])
def test_one_million_units_show_no_sample_ratio_mismatch(
    weights: tuple[float, ...], million: np.ndarray
) -> None:
    cfg = ExperimentConfig(key=f"srm-{len(weights)}", variants=variants(*weights))
    counts = np.array(list(assign_bulk(cfg, million).counts().values()))
    assert counts.sum() == million.size
    result = stats.chisquare(counts, f_exp=np.array(weights) * million.size)
    assert result.pvalue > 0.001, counts


def test_a_broken_split_is_detected(million: np.ndarray) -> None:
    # The same check does fail when the split is wrong, so the SRM test above can fail.
    cfg = ExperimentConfig(key="srm-2", variants=variants(0.5, 0.5))
    counts = np.array(list(assign_bulk(cfg, million).counts().values()))
    assert stats.chisquare(counts, f_exp=[0.49 * million.size, 0.51 * million.size]).pvalue < 1e-6


def test_experiments_with_different_seeds_are_independent(million: np.ndarray) -> None:
    first = assign_bulk(ExperimentConfig(key="a", seed="s1", variants=variants(0.5, 0.5)), million)
    second = assign_bulk(ExperimentConfig(key="b", seed="s2", variants=variants(0.5, 0.5)), million)
    table = np.zeros((2, 2), np.int64)
    np.add.at(table, (first.variant_index, second.variant_index), 1)
    assert stats.chi2_contingency(table).pvalue > 0.001, table
    same = assign_bulk(ExperimentConfig(key="c", seed="s1", variants=variants(0.5, 0.5)), million)
    assert (same.variant_index == first.variant_index).all()  # same seed: same split
