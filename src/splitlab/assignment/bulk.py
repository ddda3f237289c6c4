"""Assign many units at once with the same rules as ``assign``, vectorised in numpy.

Hashing, namespaces, holdouts, coverage, variant choice, forced variants and pre-fetched
sticky assignments are array operations. Only a targeting condition is evaluated per
unit in Python (conditions are arbitrary JSON); configs without one never loop per unit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from splitlab.assignment.config import ExperimentConfig
from splitlab.assignment.engine import REASONS
from splitlab.assignment.hashing import SUPPORTED_HASH_VERSIONS
from splitlab.assignment.targeting import compile_condition
from splitlab.assignment.vectorized import CodeUnits, hash_many

_CODE = {reason: np.uint8(i) for i, reason in enumerate(REASONS)}

Attributes = Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]]
"""Per-unit attributes: one mapping per unit, or columns (name -> one value per unit)."""


@dataclass(frozen=True)
class BulkAssignment:
    """Assignments of many units, as parallel arrays in the order of the input ids.

    ``variant_index[i]`` indexes ``variant_keys`` (-1: not in the experiment);
    ``reason_code[i]`` indexes ``REASONS``; ``bucket[i]`` is the experiment hash, NaN
    when it was not needed (exactly where the scalar ``Assignment.bucket`` is None).
    """

    variant_keys: tuple[str, ...]
    variant_index: npt.NDArray[np.int16]
    reason_code: npt.NDArray[np.uint8]
    bucket: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.variant_index.shape[0])

    @property
    def in_experiment(self) -> npt.NDArray[np.bool_]:
        return self.variant_index >= 0

    def variants(self) -> npt.NDArray[np.object_]:
        """Variant key per unit, None when not in the experiment."""
        lookup = np.array([*self.variant_keys, None], dtype=object)
        return lookup[self.variant_index]  # index -1 picks the trailing None

    def reasons(self) -> npt.NDArray[np.object_]:
        """Reason string per unit (see ``REASONS``)."""
        return np.array(REASONS, dtype=object)[self.reason_code]

    def counts(self) -> dict[str, int]:
        """Units per variant key (variants with no unit included, as 0)."""
        assigned = self.variant_index[self.variant_index >= 0]
        tally = np.bincount(assigned, minlength=len(self.variant_keys))
        return {key: int(n) for key, n in zip(self.variant_keys, tally, strict=True)}


def assign_bulk(
    config: ExperimentConfig,
    unit_ids: Sequence[str] | npt.NDArray[Any],
    attributes: Attributes | None = None,
    *,
    sticky_assignments: Mapping[str, str] | None = None,
) -> BulkAssignment:
    """Assign every unit in ``unit_ids``; element i equals ``assign(config, unit_ids[i], ...)``.

    ``unit_ids`` is a numpy unicode array (fastest) or any sequence of str; None or "" is a
    missing unit. ``sticky_assignments`` is this experiment's stored ``unit_id -> variant``
    for the current seed (pre-fetched from the sticky store); bulk runs only read it.
    """
    units = _code_units(unit_ids)
    ids, count = units.ids, units.count
    missing = units.lengths == 0
    keys = config.variant_keys
    index = np.full(count, -1, np.int16)
    reason = np.full(count, _CODE["assigned"], np.uint8)
    bucket = np.full(count, np.nan)
    undecided = ~missing
    reason[missing] = _CODE["missing_unit"]

    def decide(mask: npt.NDArray[np.bool_], why: str) -> None:
        reason[mask] = _CODE[why]
        undecided[mask] = False

    if config.forced_variants:
        _apply_lookup(ids, undecided, config.forced_variants, keys, index, decide, "forced")
    static = _static_reason(config)
    if static is not None:
        decide(undecided.copy(), static)
        return BulkAssignment(keys, index, reason, bucket)
    if sticky_assignments:
        current = {unit: v for unit, v in sticky_assignments.items() if v in keys}
        _apply_lookup(ids, undecided, current, keys, index, decide, "sticky")
    if config.condition:
        decide(undecided & ~_targeted(config, attributes, undecided), "not_targeted")
    if not undecided.any():
        return BulkAssignment(keys, index, reason, bucket)

    if config.namespace is not None:
        ns = config.namespace
        position = hash_many("__" + ns.id, units, 1)
        assert position is not None
        decide(undecided & ~((position >= ns.start) & (position < ns.end)), "namespace")
    if config.holdout is not None:
        held = hash_many(config.holdout.seed, units, 2)
        assert held is not None
        decide(undecided & (held < config.holdout.fraction), "holdout")

    n = hash_many(config.effective_seed, units, config.hash_version)
    assert n is not None  # unsupported versions returned above
    chosen = np.full(count, -1, np.int16)
    ranges = config.bucket_ranges()
    for i in reversed(range(len(keys))):  # first matching range wins, as in chooseVariation
        start, end = ranges[i]
        chosen[(n >= start) & (n < end)] = i
    bucket[undecided] = n[undecided]
    index[undecided] = chosen[undecided]
    decide(undecided & (chosen < 0), "coverage")
    return BulkAssignment(keys, index, reason, bucket)


def _code_units(unit_ids: Sequence[str] | npt.NDArray[Any]) -> CodeUnits:
    if isinstance(unit_ids, np.ndarray) and unit_ids.dtype.kind == "U":
        return CodeUnits.from_ids(unit_ids)
    raw = np.asarray(unit_ids, dtype=object)
    if raw.ndim != 1:
        raise ValueError("unit ids must be one-dimensional")
    nulls = np.asarray(raw == None, dtype=np.bool_)  # noqa: E711 (elementwise)
    if nulls.any():
        raw = np.where(nulls, "", raw)
    return CodeUnits.from_ids(raw)


def _static_reason(config: ExperimentConfig) -> str | None:
    if not config.active:
        return "inactive"
    if config.hash_version not in SUPPORTED_HASH_VERSIONS:
        return "hash_version"
    return None


def _apply_lookup(
    ids: npt.NDArray[np.str_],
    undecided: npt.NDArray[np.bool_],
    table: Mapping[str, str],
    keys: tuple[str, ...],
    index: npt.NDArray[np.int16],
    decide: Any,
    why: str,
) -> None:
    """Give units listed in ``table`` (unit id -> variant key) their variant, vectorised."""
    if not table:
        return
    listed = np.array(list(table), dtype=np.str_)
    variant_of = np.array([keys.index(v) for v in table.values()], np.int16)
    order = np.argsort(listed)
    listed, variant_of = listed[order], variant_of[order]
    position = np.searchsorted(listed, ids)
    position[position == listed.size] = 0
    hit = undecided & (listed[position] == ids)
    index[hit] = variant_of[position[hit]]
    decide(hit, why)


def _targeted(
    config: ExperimentConfig, attributes: Attributes | None, rows: npt.NDArray[np.bool_]
) -> npt.NDArray[np.bool_]:
    """Whether each unit matches the condition (evaluated only where ``rows`` is True)."""
    count = rows.shape[0]
    matched = np.zeros(count, np.bool_)
    predicate = compile_condition(config.condition)
    if attributes is None:
        passes_empty = predicate({})
        matched[rows] = passes_empty
        return matched
    if isinstance(attributes, Mapping):
        columns = {
            name: values.tolist() if isinstance(values, np.ndarray) else list(values)
            for name, values in attributes.items()
        }
        for name, values in columns.items():
            if len(values) != count:
                raise ValueError(f"attribute column {name!r} has {len(values)} values, not {count}")
        for i in np.flatnonzero(rows).tolist():
            row = {name: values[i] for name, values in columns.items()}
            matched[i] = predicate(row)
        return matched
    if len(attributes) != count:
        raise ValueError(f"{len(attributes)} attribute rows for {count} units")
    for i in np.flatnonzero(rows).tolist():
        matched[i] = predicate(attributes[i])
    return matched
