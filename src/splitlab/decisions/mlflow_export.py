"""Export an experiment's snapshot and recommendation to MLflow (extra ``splitlab[mlflow]``).

One MLflow run per snapshot, in the MLflow experiment ``splitlab/{key}`` (or a name given):

* **params** — the plan (engine, the test, alpha, power, MDE, correction, relative CI),
  the policy's minimum lift for the primary metric, the primary metric, the variants;
* **metrics** — per variant its units (``users.{variant}``); per metric × treatment the arm
  means (rates for binary metrics, milliseconds for a latency metric), the absolute and
  relative lift with CIs, the p-value and adjusted p-value (or the chance to win); the
  primary metric's cumulative daily lift as a series (step = day); the analysis time;
* **tags** — the decision (code and label), the experiment key, the snapshot id, the policy,
  and the guardrail violations the recommendation names.

Exporting the same snapshot under the same policy again finds its run (by tags) and logs
nothing new.  MLflow is imported only when exporting.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from splitlab.analysis.snapshot import Snapshot
from splitlab.decisions.charts import daily_series, primary_metric
from splitlab.decisions.guardrails import DECIDING_GUARDRAIL_CODES
from splitlab.decisions.recommendation import Recommendation, Stage
from splitlab.domain import Engine
from splitlab.errors import SplitlabError, ValidationError

if TYPE_CHECKING:
    from splitlab.services import Services

MAX_PARAM_CHARS = 500
"""Longest parameter value logged (MLflow's own limit is larger; a long list is cut)."""


class MlflowUnavailableError(SplitlabError):
    """MLflow is not installed."""

    status = 501
    code = "mlflow_unavailable"


@dataclass
class MlflowRun:
    """What one snapshot becomes in MLflow."""

    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    series: dict[str, list[tuple[int, int, float]]] = field(default_factory=dict)
    """Metric name → (step, timestamp ms, value) points."""
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExportResult:
    """The outcome of an export."""

    tracking_uri: str
    experiment_name: str
    experiment_id: str
    run_id: str
    created: bool
    """False when the snapshot was already exported under the same policy."""


def _put(metrics: dict[str, float], name: str, value: float | None) -> None:
    if value is not None and math.isfinite(value):
        metrics[name] = float(value)


def guardrail_violations(recommendation: Recommendation) -> list[str]:
    """``metric:variant`` for each guardrail finding that holds or rolls back the
    experiment, in the recommendation's order, without repeats."""
    found = [
        f"{r.metric or '?'}:{r.variant or '?'}"
        for r in recommendation.reasons
        if r.stage is Stage.GUARDRAILS and r.code in DECIDING_GUARDRAIL_CODES
    ]
    return list(dict.fromkeys(found))


def mlflow_run(
    snapshot: Snapshot,
    recommendation: Recommendation,
    *,
    minimum_lift: tuple[str, float] | None = None,
) -> MlflowRun:
    """The params, metrics, series and tags of ``snapshot`` under ``recommendation`` (pure);
    ``minimum_lift`` is the policy's ``(kind, value)`` for the primary metric."""
    settings = snapshot.settings
    run = MlflowRun()
    primary = primary_metric(snapshot)
    params: dict[str, Any] = {
        "engine": snapshot.engine.value,
        "test": _test_name(snapshot),
        "alpha": settings.get("alpha"),
        "power": settings.get("power"),
        "mde": settings.get("mde"),
        "correction": settings.get("correction"),
        "relative_ci": settings.get("relative_ci"),
        "primary_metric": primary.key if primary else None,
        "variants": ",".join(u.variant for u in snapshot.units),
        "segments": ",".join(str(s) for s in settings.get("segments", [])),
        "settings_hash": snapshot.settings_hash,
    }
    if minimum_lift is not None:
        params["minimum_lift"] = minimum_lift[1]
        params["minimum_lift_kind"] = minimum_lift[0]
    run.params = {k: str(v)[:MAX_PARAM_CHARS] for k, v in params.items() if v not in (None, "")}
    for unit in snapshot.units:
        run.metrics[f"users.{unit.variant}"] = float(unit.n)
        run.metrics[f"excluded.{unit.variant}"] = float(unit.excluded)
    run.metrics["analysis.duration_ms"] = float(snapshot.duration_ms)
    for row in snapshot.overall():
        prefix = f"{row.metric}.{row.variant}"
        _put(run.metrics, f"{row.metric}.control.mean", row.control_mean)
        _put(run.metrics, f"{prefix}.mean", row.treatment_mean)
        _put(run.metrics, f"{prefix}.abs_lift", row.abs_effect)
        _put(run.metrics, f"{prefix}.abs_lift_ci_low", row.abs_ci_low)
        _put(run.metrics, f"{prefix}.abs_lift_ci_high", row.abs_ci_high)
        _put(run.metrics, f"{prefix}.lift", row.rel_effect)
        _put(run.metrics, f"{prefix}.lift_ci_low", row.rel_ci_low)
        _put(run.metrics, f"{prefix}.lift_ci_high", row.rel_ci_high)
        _put(run.metrics, f"{prefix}.p_value", row.p_value)
        _put(run.metrics, f"{prefix}.p_value_adjusted", row.p_value_adjusted)
        _put(run.metrics, f"{prefix}.chance_to_win", row.chance_to_win)
        _put(run.metrics, f"{prefix}.power", row.power)
    if primary is not None:
        for series in daily_series(snapshot, primary.key):
            points = [
                (step, _day_ms(day), value)
                for step, (day, value) in enumerate(zip(series.days, series.effect, strict=True))
            ]
            run.series[f"{primary.key}.{series.variant}.daily_lift"] = points
    violations = guardrail_violations(recommendation)
    run.tags = {
        "splitlab.experiment": snapshot.experiment,
        "splitlab.decision": recommendation.code.value,
        "splitlab.decision_label": recommendation.label,
        "splitlab.decision_variant": recommendation.variant or "",
        "splitlab.snapshot_id": str(snapshot.snapshot_id),
        "splitlab.policy": recommendation.policy,
        "splitlab.policy_hash": recommendation.policy_hash,
        "splitlab.guardrail_violations": ",".join(violations) or "none",
        "splitlab.guardrail_violation_count": str(len(violations)),
    }
    return run


def _test_name(snapshot: Snapshot) -> str:
    """The tests behind the p-values, in a few words."""
    if snapshot.engine is Engine.BAYESIAN:
        return "bayesian posterior (chance to win, expected loss)"
    binary = snapshot.settings.get("binary_test", "z")
    tests = f"{binary} (binary), welch (others)"
    return tests + (
        " with always-valid sequential bounds" if snapshot.engine is Engine.SEQUENTIAL else ""
    )


def _day_ms(day: Any) -> int:
    from datetime import UTC, datetime

    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def _client(tracking_uri: str) -> Any:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as error:
        raise MlflowUnavailableError(
            "MLflow is not installed: pip install 'splitlab[mlflow]'", details={"error": str(error)}
        ) from error
    if tracking_uri.startswith("file:") or "://" not in tracking_uri:
        # the user asked for a file store; MLflow 3 refuses one unless opted in
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MlflowClient(tracking_uri=tracking_uri)


def log_run(
    *,
    tracking_uri: str,
    experiment_name: str,
    run: MlflowRun,
    run_name: str,
    timestamp_ms: int,
) -> ExportResult:
    """Log ``run`` to MLflow at ``tracking_uri`` (idempotent by its snapshot and policy
    tags)."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri)
    try:
        existing = client.get_experiment_by_name(experiment_name)
        experiment_id = (
            existing.experiment_id
            if existing is not None
            else client.create_experiment(experiment_name)
        )
        query = " and ".join(
            f"tags.`{name}` = '{run.tags[name]}'"
            for name in ("splitlab.snapshot_id", "splitlab.policy_hash")
        )
        found = client.search_runs([experiment_id], filter_string=query, max_results=1)
        if found:
            return ExportResult(
                tracking_uri, experiment_name, experiment_id, found[0].info.run_id, False
            )
        created = client.create_run(experiment_id, start_time=timestamp_ms, run_name=run_name)
        run_id = created.info.run_id
        metrics = [Metric(k, v, timestamp_ms, 0) for k, v in run.metrics.items()]
        metrics += [
            Metric(name, value, ts, step)
            for name, points in run.series.items()
            for step, ts, value in points
        ]
        params = [Param(k, v) for k, v in run.params.items()]
        tags = [RunTag(k, v) for k, v in run.tags.items()]
        for start in range(0, max(len(metrics), 1), 1000):  # MLflow's batch limit
            client.log_batch(
                run_id,
                metrics=metrics[start : start + 1000],
                params=params if start == 0 else [],
                tags=tags if start == 0 else [],
            )
        client.set_terminated(run_id, end_time=timestamp_ms)
    except MlflowException as error:
        raise ValidationError(
            f"MLflow at {tracking_uri!r} refused the export: {error.message}",
            details={"tracking_uri": tracking_uri},
        ) from error
    return ExportResult(tracking_uri, experiment_name, experiment_id, run_id, True)


def export_mlflow(
    *, services: Services, key: str, tracking_uri: str, experiment_name: str | None = None
) -> ExportResult:
    """Export the current snapshot of ``key`` and its recommendation to MLflow."""
    from splitlab.decisions.reports import load_inputs
    from splitlab.decisions.service import resolve_policy

    inputs = load_inputs(services=services, key=key)
    snapshot, recommendation = inputs.snapshot, inputs.recommendation
    primary = primary_metric(snapshot)
    minimum_lift = None
    if primary is not None:
        policy = resolve_policy(services=services, key=key)
        minimum_lift = policy.primary.min_lift.threshold(primary.key)
    run = mlflow_run(snapshot, recommendation, minimum_lift=minimum_lift)
    return log_run(
        tracking_uri=tracking_uri,
        experiment_name=experiment_name or f"splitlab/{key}",
        run=run,
        run_name=f"{key} snapshot {snapshot.snapshot_id}",
        timestamp_ms=int(snapshot.created_at.timestamp() * 1000),
    )
