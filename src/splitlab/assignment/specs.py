"""Stored experiments as the configs the assignment engine runs (pure, no I/O)."""

from __future__ import annotations

from splitlab.assignment.config import ExperimentConfig, Namespace, VariantConfig
from splitlab.domain import ExperimentSpec


def config_from_spec(spec: ExperimentSpec, *, active: bool = True) -> ExperimentConfig:
    """The assignment config of a stored experiment (seed, hash version, weights, coverage,
    namespace). ``active=False`` for an experiment that is not running."""
    return ExperimentConfig(
        key=spec.key,
        variants=tuple(VariantConfig(v.key, v.weight, v.payload) for v in spec.variants),
        seed=spec.seed or spec.key,
        hash_version=spec.hash_version,
        coverage=spec.coverage,
        namespace=(
            Namespace(spec.namespace.id, spec.namespace.start, spec.namespace.end)
            if spec.namespace
            else None
        ),
        active=active,
    )
