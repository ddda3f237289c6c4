"""YAML experiment contracts: ``splitlab apply -f`` and ``splitlab export``.

A contract file holds an ``experiment`` mapping and optionally the ``metrics`` it uses::

    metrics:
      - {key: checkout, kind: binary, event: purchase}
    experiment:
      key: new-checkout
      hypothesis: ...

A bare experiment mapping (with a top-level ``key``) is accepted too. Applying is one
transaction: either everything in the file is written, or nothing is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy.orm import Session

from splitlab.domain import ExperimentPatch, ExperimentSpec, MetricDefinition, Principal
from splitlab.errors import NotFoundError, ValidationError, from_pydantic
from splitlab.store import experiments as experiments_repo
from splitlab.store import metrics as metrics_repo
from splitlab.store.tables import ExperimentRow


@dataclass
class Contract:
    experiment: ExperimentSpec | None
    metrics: list[MetricDefinition] = field(default_factory=list)


def _path(loc: list[Any]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def parse_contract(text: str) -> Contract:
    """Parse and validate a contract; errors name each field path (``experiment.plan.alpha``)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValidationError(
            f"not valid YAML: {exc}", details=[{"loc": [], "msg": str(exc)}]
        ) from exc
    if not isinstance(data, dict):
        raise ValidationError("a contract is a YAML mapping with 'experiment' and/or 'metrics'")
    if "key" in data and "experiment" not in data:
        data = {"experiment": data}
    unknown = sorted(set(data) - {"experiment", "metrics"})
    if unknown:
        raise ValidationError(
            f"unknown top-level fields: {', '.join(unknown)} (expected experiment, metrics)",
            details=[{"loc": [u], "msg": "unknown field"} for u in unknown],
        )
    errors: list[dict[str, Any]] = []
    metrics = []
    raw_metrics = data.get("metrics") or []
    if not isinstance(raw_metrics, list):
        errors.append({"loc": ["metrics"], "msg": "must be a list of metric definitions"})
        raw_metrics = []
    for i, raw in enumerate(raw_metrics):
        try:
            metrics.append(MetricDefinition.model_validate(raw))
        except PydanticValidationError as exc:
            errors += from_pydantic(exc, prefix=("metrics", i)).details
    experiment = None
    if data.get("experiment") is not None:
        try:
            experiment = ExperimentSpec.model_validate(data["experiment"])
        except PydanticValidationError as exc:
            errors += from_pydantic(exc, prefix=("experiment",)).details
    if errors:
        for error in errors:
            error["path"] = _path(error["loc"])
        summary = "; ".join(f"{e['path']}: {e['msg']}" for e in errors)
        raise ValidationError(f"invalid contract: {summary}", details=errors)
    return Contract(experiment=experiment, metrics=metrics)


def apply_contract(
    *, session: Session, contract: Contract, actor: Principal, reason: str = "applied from YAML"
) -> tuple[ExperimentRow | None, str]:
    """Write the contract's metrics, then create or update its experiment. Returns (row, action)."""
    for definition in contract.metrics:
        metrics_repo.upsert_metric(session=session, definition=definition, actor=actor)
    spec = contract.experiment
    if spec is None:
        return None, "metrics"
    try:
        experiments_repo.get_experiment(session=session, key=spec.key)
    except NotFoundError:
        return experiments_repo.create_experiment(
            session=session, spec=spec, actor=actor
        ), "created"
    patch = ExperimentPatch.model_validate(spec.model_dump(exclude={"key"}))
    row = experiments_repo.update_experiment(
        session=session, key=spec.key, patch=patch, actor=actor, reason=reason
    )
    return row, "updated"


def export_contract(*, session: Session, key: str) -> str:
    """The experiment and the definitions of every metric it uses, as YAML."""
    row = experiments_repo.get_experiment(session=session, key=key)
    spec = experiments_repo.spec_from_row(row)
    metrics = []
    for metric_key in dict.fromkeys(spec.metrics.all_keys()):  # ordered, each once
        try:
            metrics.append(
                metrics_repo.metric_from_row(
                    metrics_repo.get_metric(session=session, key=metric_key)
                )
            )
        except NotFoundError:
            continue  # a draft may name a metric that is not defined yet
    document: dict[str, Any] = {}
    if metrics:
        document["metrics"] = [
            {"key": m.key, "kind": m.kind.value}
            | ({"event": m.event} if m.source == "events" else {})
            | m.model_dump(mode="json", exclude_defaults=True)
            for m in metrics
        ]
    document["experiment"] = spec.model_dump(mode="json")
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
