"""Bandits: Beta posteriors of the primary metric from the warehouse, and Thompson-sampling
weights written through the audited store update.

The service composes the lanes: counts from ``warehouse.conversions``, the posterior math and
the weights from ``stats``, the change through ``store.experiments.update_experiment`` — whose
commit tells this process's live-config cache at once (``Services.changes``) and other
processes through the store's cache versions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from splitlab.domain import ExperimentPatch, ExperimentType, MetricKind, Principal, Role
from splitlab.domain.lifecycle import LIVE
from splitlab.errors import ConflictError, ValidationError
from splitlab.stats import beta_posteriors, thompson_weights
from splitlab.store.experiments import (
    get_experiment,
    metric_definitions,
    spec_from_row,
    update_experiment,
)
from splitlab.warehouse.conversions import conversions

if TYPE_CHECKING:
    from splitlab.services import Services

BANDIT = Principal(username="bandit", role=Role.ADMIN)
"""The actor of every bandit weight change in the audit log."""


@dataclass(frozen=True)
class Rebalance:
    """A bandit weight change: variant keys with their weights before and after."""

    key: str
    variants: tuple[str, ...]
    before: tuple[float, ...]
    after: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.key,
            "weights": {
                k: {"before": b, "after": a}
                for k, b, a in zip(self.variants, self.before, self.after, strict=True)
            },
        }


def _rounded(weights: Sequence[float], digits: int = 6) -> list[float]:
    """Weights rounded for a readable audit log, still summing to 1 (the largest absorbs
    the rounding, so the floor of every other arm is kept)."""
    rounded = [round(float(w), digits) for w in weights]
    largest = max(range(len(rounded)), key=rounded.__getitem__)
    rounded[largest] = round(1 - (sum(rounded) - rounded[largest]), digits + 2)
    return rounded


def _check_posteriors(
    arms: int, posterior_means: Sequence[float], posterior_variances: Sequence[float]
) -> None:
    """One finite mean and one finite, non-negative variance per arm (else 422)."""
    for name, values in (
        ("posteriorMeans", posterior_means),
        ("posteriorVariances", posterior_variances),
    ):
        if len(values) != arms:
            raise ValidationError(
                f"{name}: {len(values)} values for {arms} variants",
                details=[{"loc": [name], "msg": f"needs one value per variant ({arms})"}],
            )
        if not all(math.isfinite(v) for v in values):
            raise ValidationError(
                f"{name}: every value must be a finite number",
                details=[{"loc": [name], "msg": "must be finite numbers"}],
            )
    if any(v < 0 for v in posterior_variances):
        raise ValidationError(
            "posteriorVariances: a variance cannot be negative",
            details=[{"loc": ["posteriorVariances"], "msg": "must be zero or more"}],
        )


def rebalance_bandit(
    *,
    services: Services,
    key: str,
    posterior_means: Sequence[float],
    posterior_variances: Sequence[float],
    seed: int | None = 0,
    min_weight: float = 0.01,
    actor: Principal = BANDIT,
    reason: str = "",
) -> Rebalance:
    """Set a live bandit experiment's weights ∝ P(arm is best) (Thompson sampling, at least
    ``min_weight`` per arm), through ``update_experiment``: the change is audited with its
    before/after, and units already exposed keep their variant (sticky bucketing).

    ``posterior_means``/``posterior_variances`` are in variant order.
    """
    with services.sessions.begin() as session:
        row = get_experiment(session=session, key=key)
        spec = spec_from_row(row)
        if spec.type is not ExperimentType.BANDIT:
            raise ConflictError(
                f"experiment {key!r} is of type {spec.type}, not bandit: its weights are fixed",
                details={"type": spec.type},
            )
        if row.status not in LIVE:
            raise ConflictError(
                f"experiment {key!r} is {row.status}: only a running bandit is rebalanced",
                details={"status": row.status},
            )
        _check_posteriors(len(spec.variants), posterior_means, posterior_variances)
        try:
            weights = thompson_weights(
                posterior_means, posterior_variances, min_weight=min_weight, seed=seed
            )
        except ValueError as exc:
            raise ValidationError(
                f"cannot compute bandit weights: {exc}",
                details=[{"loc": ["posteriorVariances"], "msg": str(exc)}],
            ) from exc
        after = _rounded(weights.tolist())
        variants = [
            v.model_copy(update={"weight": w}) for v, w in zip(spec.variants, after, strict=True)
        ]
        update_experiment(
            session=session,
            key=key,
            patch=ExperimentPatch(variants=variants),
            actor=actor,
            reason=reason or "Thompson sampling rebalance",
        )
    return Rebalance(
        key,
        tuple(v.key for v in spec.variants),
        tuple(v.weight for v in spec.variants),
        tuple(after),
    )


@dataclass(frozen=True)
class BinaryPosteriors:
    """Beta(1 + conversions, 1 + non-conversions) posteriors per variant, as normals."""

    variants: tuple[str, ...]
    units: tuple[int, ...]
    conversions: tuple[int, ...]

    @property
    def means(self) -> list[float]:
        return [float(m) for m in beta_posteriors(self.units, self.conversions).means]

    @property
    def variances(self) -> list[float]:
        return [float(v) for v in beta_posteriors(self.units, self.conversions).variances]


def binary_posteriors(*, services: Services, key: str) -> BinaryPosteriors:
    """Posteriors of the primary metric from the warehouse, for the simple case only: a
    binary metric without filter, window or capping — a unit converts when it has the
    metric's event at or after its first exposure; units exposed to two variants are left
    out. Anything else raises ``ValidationError``: send posteriors from the analysis."""
    with services.sessions() as session:
        row = get_experiment(session=session, key=key)
        spec = spec_from_row(row)
        primary = spec.metrics.primary
        # the version the experiment pinned when it started, as the analysis uses
        metric = metric_definitions(session=session, row=row)[primary] if primary else None
    simple = (
        metric is not None
        and metric.kind is MetricKind.BINARY
        and not metric.filter
        and metric.window_hours is None
        and not metric.window_start_hours
        and metric.value_field is None
    )
    if metric is None or not simple:
        raise ValidationError(
            f"experiment {key!r}: posteriors are computed here only for a binary primary "
            "metric without filter or window; send posteriorMeans and posteriorVariances",
            details=[{"loc": ["posteriorMeans"], "msg": "required for this primary metric"}],
        )
    counts = conversions(services.warehouse, experiment_key=key, event=metric.event)
    names = tuple(v.key for v in spec.variants)
    return BinaryPosteriors(
        names,
        tuple(counts.units.get(name, 0) for name in names),
        tuple(counts.converted.get(name, 0) for name in names),
    )
