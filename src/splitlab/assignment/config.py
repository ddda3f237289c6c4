"""The assignment configuration of one experiment: frozen, validated, JSON round-trippable.

``ExperimentConfig.to_dict()`` is the wire format that ``GET /api/sdk/config`` serves and
that SDKs evaluate locally; ``from_dict`` reads it back and ignores unknown keys, so an
older SDK keeps working when the server adds fields.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from splitlab.assignment.buckets import BucketRange, bucket_ranges

if TYPE_CHECKING:
    from splitlab.assignment.engine import CompiledExperiment

DEFAULT_HASH_VERSION = 2


@dataclass(frozen=True, slots=True)
class VariantConfig:
    """One arm: its key, its traffic weight (weights should sum to 1) and a JSON payload."""

    key: str
    weight: float
    payload: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise ValueError("variant key must be a non-empty string")
        if not math.isfinite(self.weight) or self.weight < 0:
            raise ValueError(f"variant {self.key!r}: weight must be a finite number >= 0")


@dataclass(frozen=True, slots=True)
class Namespace:
    """A slice ``[start, end)`` of namespace ``id``; experiments on disjoint slices of the
    same namespace never share a unit."""

    id: str
    start: float
    end: float

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end <= 1:
            raise ValueError(f"namespace {self.id!r}: need 0 <= start <= end <= 1")


@dataclass(frozen=True, slots=True)
class Holdout:
    """A holdout group: units with ``hash(seed, unit_id, 2) < fraction`` get no assignment.

    Give several experiments the same holdout seed to keep one population out of all of
    them (a global holdout), which measures their combined effect.
    """

    seed: str
    fraction: float

    def __post_init__(self) -> None:
        if not 0 <= self.fraction <= 1:
            raise ValueError(f"holdout {self.seed!r}: fraction must be within [0, 1]")


@dataclass(frozen=True, eq=True)
class ExperimentConfig:
    """Everything needed to assign a unit to a variant, and nothing else.

    ``seed`` defaults to the experiment key (as in GrowthBook). Changing the seed
    re-randomises every unit: it is a new experiment, also for sticky bucketing.
    ``condition`` is a targeting condition (see ``splitlab.assignment.targeting``) and
    ``forced_variants`` maps unit ids to variant keys for QA.
    """

    key: str
    variants: tuple[VariantConfig, ...]
    seed: str = ""
    hash_version: int = DEFAULT_HASH_VERSION
    coverage: float = 1.0
    namespace: Namespace | None = None
    condition: Mapping[str, Any] = field(default_factory=dict)
    forced_variants: Mapping[str, str] = field(default_factory=dict)
    holdout: Holdout | None = None
    active: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise ValueError("experiment key must be a non-empty string")
        variants = tuple(self.variants)
        object.__setattr__(self, "variants", variants)
        if not variants:
            raise ValueError(f"experiment {self.key!r}: needs at least one variant")
        keys = [v.key for v in variants]
        if len(set(keys)) != len(keys):
            raise ValueError(f"experiment {self.key!r}: duplicate variant keys {keys}")
        if not math.isfinite(self.coverage):
            raise ValueError(f"experiment {self.key!r}: coverage must be finite")
        unknown = {v for v in self.forced_variants.values() if v not in keys}
        if unknown:
            raise ValueError(f"experiment {self.key!r}: forced to unknown variants {unknown}")
        object.__setattr__(self, "condition", MappingProxyType(dict(self.condition)))
        object.__setattr__(self, "forced_variants", MappingProxyType(dict(self.forced_variants)))

    __hash__ = None  # type: ignore[assignment]  # mapping fields: equality, no hashing

    @property
    def effective_seed(self) -> str:
        """The seed actually hashed: ``seed``, or the experiment key when seed is empty."""
        return self.seed or self.key

    @property
    def variant_keys(self) -> tuple[str, ...]:
        return tuple(v.key for v in self.variants)

    @property
    def weights(self) -> tuple[float, ...]:
        return tuple(v.weight for v in self.variants)

    def bucket_ranges(self) -> list[BucketRange]:
        """The hash range of each variant after coverage and the weight fallback."""
        return bucket_ranges(len(self.variants), self.coverage, self.weights)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("compiled", None)  # derived (and holds closures): rebuilt on demand
        for name in _READ_ONLY_MAPPINGS:
            state[name] = dict(state[name])  # mappingproxy does not pickle
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name in _READ_ONLY_MAPPINGS:
            state[name] = MappingProxyType(dict(state[name]))
        self.__dict__.update(state)

    @functools.cached_property
    def compiled(self) -> CompiledExperiment:
        """Precomputed state for fast evaluation (built once per config object)."""
        from splitlab.assignment.engine import CompiledExperiment

        return CompiledExperiment(self)

    def with_weights(self, weights: Sequence[float]) -> ExperimentConfig:
        """A copy with new variant weights in variant order (e.g. bandit re-weighting)."""
        if len(weights) != len(self.variants):
            raise ValueError(
                f"experiment {self.key!r}: {len(weights)} weights for {len(self.variants)} variants"
            )
        variants = tuple(
            dataclasses.replace(v, weight=float(w))
            for v, w in zip(self.variants, weights, strict=True)
        )
        return dataclasses.replace(self, variants=variants)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able wire format (camelCase keys, as served by ``/api/sdk/config``)."""
        return {
            "key": self.key,
            "seed": self.effective_seed,
            "hashVersion": self.hash_version,
            "variants": [
                {"key": v.key, "weight": v.weight, "payload": v.payload} for v in self.variants
            ],
            "coverage": self.coverage,
            "namespace": (
                None
                if self.namespace is None
                else {
                    "id": self.namespace.id,
                    "start": self.namespace.start,
                    "end": self.namespace.end,
                }
            ),
            "condition": _thaw(self.condition),
            "forcedVariants": dict(self.forced_variants),
            "holdout": (
                None
                if self.holdout is None
                else {"seed": self.holdout.seed, "fraction": self.holdout.fraction}
            ),
            "active": self.active,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExperimentConfig:
        """Read the wire format back; unknown keys are ignored, missing ones take defaults."""
        namespace = data.get("namespace")
        holdout = data.get("holdout")
        return cls(
            key=data["key"],
            variants=tuple(
                VariantConfig(key=v["key"], weight=float(v["weight"]), payload=v.get("payload"))
                for v in data["variants"]
            ),
            seed=data.get("seed") or "",
            hash_version=int(data.get("hashVersion", DEFAULT_HASH_VERSION)),
            coverage=float(data.get("coverage", 1.0)),
            namespace=(
                None
                if namespace is None
                else Namespace(
                    id=namespace["id"],
                    start=float(namespace["start"]),
                    end=float(namespace["end"]),
                )
            ),
            condition=data.get("condition") or {},
            forced_variants=data.get("forcedVariants") or {},
            holdout=(
                None
                if holdout is None
                else Holdout(seed=holdout["seed"], fraction=float(holdout["fraction"]))
            ),
            active=bool(data.get("active", True)),
        )


_READ_ONLY_MAPPINGS = ("condition", "forced_variants")


def _thaw(value: Any) -> Any:
    """Plain dicts/lists from the read-only mappings kept inside a config."""
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_thaw(v) for v in value]
    return value
