"""Assign one unit to a variant: the decision procedure shared by the API and the SDK.

The checks run in this order, and the first that decides gives the ``reason``:

1. ``missing_unit``  — empty unit id: nothing to hash.
2. ``forced``        — the unit is listed in ``forced_variants`` (QA); works even when the
   experiment is inactive. Not a randomised exposure: do not count it in the analysis.
3. ``inactive``      — the experiment is not running.
4. ``hash_version``  — unknown hash version: no one is assigned (GrowthBook's rule).
5. ``sticky``        — the sticky store already holds a variant that still exists; it wins
   over targeting, namespace, holdout, coverage and weights, as in GrowthBook.
6. ``not_targeted``  — the targeting condition does not match the attributes.
7. ``namespace``     — the unit falls outside the experiment's namespace slice.
8. ``holdout``       — the unit is in the holdout group.
9. ``coverage``      — the unit's hash falls outside every variant range.
10. ``assigned``     — hashed into a variant (and stored when a sticky store is given).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from splitlab.assignment.config import ExperimentConfig
from splitlab.assignment.hashing import (
    FNV_OFFSET_BASIS,
    SUPPORTED_HASH_VERSIONS,
    fnv1a32_continue,
    gb_hash,
    utf16_code_units,
    v1_with_suffix,
    v2_from_seed_state,
)
from splitlab.assignment.sticky import StickyStore
from splitlab.assignment.targeting import compile_condition

REASONS = (
    "assigned",
    "forced",
    "sticky",
    "missing_unit",
    "inactive",
    "hash_version",
    "not_targeted",
    "namespace",
    "holdout",
    "coverage",
)
"""Every ``Assignment.reason``, in a fixed order (bulk results store indices into it)."""


class Assignment(NamedTuple):
    """The outcome of assigning one unit.

    ``variant`` is the variant key, or None when the unit is not in the experiment;
    ``payload`` is that variant's payload; ``in_experiment`` says whether the unit
    gets a variant; ``reason`` is one of ``REASONS``; ``bucket`` is the unit's hash in
    ``[0, 1)`` when the experiment hash was computed, else None.
    """

    variant: str | None
    payload: Any
    in_experiment: bool
    reason: str
    bucket: float | None


def _not_in(reason: str) -> Assignment:
    return Assignment(None, None, False, reason, None)


_new_assignment = tuple.__new__


class CompiledExperiment:
    """An ``ExperimentConfig`` with everything that does not depend on the unit precomputed.

    Obtain it as ``config.compiled`` (built once per config object). It holds no per-unit
    state, so one instance is safe to share between threads.
    """

    __slots__ = (
        "_condition",
        "_forced",
        "_has_gates",
        "_hash_v2",
        "_holdout",
        "_holdout_state",
        "_namespace",
        "_namespace_units",
        "_payloads",
        "_ranges",
        "_seed",
        "_seed_state",
        "_static_reason",
        "_variant_set",
        "config",
    )

    def __init__(self, config: ExperimentConfig) -> None:
        self.config = config
        self._seed = config.effective_seed
        self._seed_state = fnv1a32_continue(FNV_OFFSET_BASIS, self._seed)
        self._ranges = [
            (start, end, variant.key, variant.payload)
            for (start, end), variant in zip(config.bucket_ranges(), config.variants, strict=True)
        ]
        self._payloads = {v.key: v.payload for v in config.variants}
        self._variant_set = frozenset(self._payloads)
        self._forced = dict(config.forced_variants)
        self._condition = compile_condition(config.condition) if config.condition else None
        self._namespace = config.namespace
        self._namespace_units = (
            tuple(utf16_code_units("__" + config.namespace.id)) if config.namespace else ()
        )
        self._holdout = config.holdout
        self._holdout_state = (
            fnv1a32_continue(FNV_OFFSET_BASIS, config.holdout.seed) if config.holdout else 0
        )
        self._static_reason: str | None = None
        if not config.active:
            self._static_reason = "inactive"
        elif config.hash_version not in SUPPORTED_HASH_VERSIONS:
            self._static_reason = "hash_version"
        self._hash_v2 = config.hash_version == 2
        self._has_gates = bool(
            self._forced
            or self._static_reason
            or self._condition is not None
            or self._namespace is not None
            or self._holdout is not None
        )

    def bucket(self, unit_id: str) -> float | None:
        """The unit's hash for this experiment, or None for an unsupported hash version."""
        if self.config.hash_version == 2:
            return v2_from_seed_state(self._seed_state, unit_id)
        return gb_hash(self._seed, unit_id, self.config.hash_version)

    def assign(
        self,
        unit_id: str,
        attributes: Mapping[str, Any] | None = None,
        *,
        sticky: StickyStore | None = None,
    ) -> Assignment:
        """Assign one unit (see the module docstring for the order of checks)."""
        if not unit_id:
            return _MISSING_UNIT
        if self._has_gates or sticky is not None:
            decided = self._gates(unit_id, attributes, sticky)
            if decided is not None:
                return decided
        if self._hash_v2:
            n = v2_from_seed_state(self._seed_state, unit_id)
        else:
            n = gb_hash(self._seed, unit_id, 1)  # type: ignore[assignment]
        for start, end, key, payload in self._ranges:
            if start <= n < end:
                if sticky is not None:
                    sticky.set(self.config.key, self._seed, unit_id, key)
                return _new_assignment(Assignment, (key, payload, True, "assigned", n))
        return _new_assignment(Assignment, (None, None, False, "coverage", n))

    def _gates(
        self, unit_id: str, attributes: Mapping[str, Any] | None, sticky: StickyStore | None
    ) -> Assignment | None:
        """Checks 2-8 of the module docstring; None when the unit is to be hashed."""
        if self._forced:
            forced = self._forced.get(unit_id)
            if forced is not None:
                return Assignment(forced, self._payloads[forced], True, "forced", None)
        if self._static_reason is not None:
            return _STATIC[self._static_reason]
        if sticky is not None:
            stored = sticky.get(self.config.key, self._seed, unit_id)
            if stored is not None and stored in self._variant_set:
                return Assignment(stored, self._payloads[stored], True, "sticky", None)
        if self._condition is not None and not self._condition(
            attributes if attributes is not None else _NO_ATTRIBUTES
        ):
            return _NOT_TARGETED
        namespace = self._namespace
        if namespace is not None and not (
            namespace.start <= v1_with_suffix(unit_id, self._namespace_units) < namespace.end
        ):
            return _NAMESPACE
        holdout = self._holdout
        if (
            holdout is not None
            and v2_from_seed_state(self._holdout_state, unit_id) < holdout.fraction
        ):
            return _HOLDOUT
        return None


def v2_hash(seed: str, unit_id: str) -> float:
    """``gb_hash(seed, unit_id, 2)``."""
    return v2_from_seed_state(fnv1a32_continue(FNV_OFFSET_BASIS, seed), unit_id)


_NO_ATTRIBUTES: Mapping[str, Any] = MappingProxyType({})
_MISSING_UNIT = _not_in("missing_unit")
_NOT_TARGETED = _not_in("not_targeted")
_NAMESPACE = _not_in("namespace")
_HOLDOUT = _not_in("holdout")
_STATIC = {reason: _not_in(reason) for reason in ("inactive", "hash_version")}


def assign(
    config: ExperimentConfig,
    unit_id: str,
    attributes: Mapping[str, Any] | None = None,
    *,
    sticky: StickyStore | None = None,
) -> Assignment:
    """Assign ``unit_id`` to a variant of ``config``.

    Deterministic: the same config, unit and attributes give the same answer in every
    process and in every GrowthBook-compatible SDK. ``sticky``, when given, is consulted
    first and updated on a fresh assignment.
    """
    return config.compiled.assign(unit_id, attributes, sticky=sticky)
