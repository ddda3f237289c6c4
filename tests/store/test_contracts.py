"""YAML contracts: validation with field paths, one-transaction apply, round trip."""

from __future__ import annotations

import pytest
import yaml

from splitlab.contracts import apply_contract, export_contract, parse_contract
from splitlab.domain import LOCAL_ADMIN
from splitlab.errors import ValidationError
from splitlab.services import Services
from splitlab.store.experiments import list_experiments
from splitlab.store.metrics import list_metrics

CONTRACT = """
metrics:
  - key: conversion
    kind: binary
    event: purchase
  - key: latency-p95
    kind: quantile
    event: page_load
    quantile: 0.95
    direction: decrease
    margin: 0.05
experiment:
  key: fast-checkout
  name: Fast checkout
  hypothesis: A faster checkout converts better
  type: feature
  team: web
  owner: alice
  tags: [checkout, speed]
  variants:
    - {key: control, weight: 0.5, is_control: true}
    - {key: fast, weight: 0.5, payload: {cache: true}}
  coverage: 0.8
  namespace: {id: checkout, start: 0.0, end: 0.5}
  metrics:
    primary: conversion
    guardrails:
      - latency-p95
      - {key: conversion, margin: 0.01}
  plan:
    {engine: sequential, alpha: 0.01, mde: 0.02, correction: bh, segments: [country], max_days: 28}
"""


def test_round_trip(services: Services) -> None:
    with services.sessions.begin() as session:
        row, action = apply_contract(
            session=session, contract=parse_contract(CONTRACT), actor=LOCAL_ADMIN
        )
        assert action == "created" and row is not None
    with services.sessions() as session:
        exported = export_contract(session=session, key="fast-checkout")
    reparsed = parse_contract(exported)
    original = parse_contract(CONTRACT)
    assert reparsed.experiment == original.experiment
    assert reparsed.metrics == original.metrics
    # applying the export again changes nothing
    with services.sessions.begin() as session:
        _, action = apply_contract(session=session, contract=reparsed, actor=LOCAL_ADMIN)
        assert action == "updated"
    with services.sessions() as session:
        assert export_contract(session=session, key="fast-checkout") == exported
    data = yaml.safe_load(exported)
    assert data["experiment"]["metrics"]["guardrails"][1] == {"key": "conversion", "margin": 0.01}


@pytest.mark.parametrize(
    ("edit", "path"),
    [
        (
            lambda d: d["experiment"]["variants"][1].update(weight=3),
            "experiment.variants[1].weight",
        ),
        (lambda d: d["metrics"][1].pop("quantile"), "metrics[1]"),
        (lambda d: d["experiment"].update(colour="red"), "experiment.colour"),
        (lambda d: d["experiment"]["plan"].update(alpha=2), "experiment.plan.alpha"),
        (lambda d: d.update(extra=1), "extra"),
    ],
)
def test_invalid_file_names_the_path_and_writes_nothing(
    services: Services, edit: object, path: str
) -> None:
    data = yaml.safe_load(CONTRACT)
    edit(data)  # type: ignore[operator]
    with pytest.raises(ValidationError) as info:
        parse_contract(yaml.safe_dump(data))
    assert path in info.value.message


def test_failing_apply_rolls_back_metrics(services: Services) -> None:
    data = yaml.safe_load(CONTRACT)
    data["experiment"]["metrics"]["secondary"] = ["not-defined"]
    contract = parse_contract(yaml.safe_dump(data))
    with pytest.raises(ValidationError, match="not-defined"), services.sessions.begin() as session:
        apply_contract(session=session, contract=contract, actor=LOCAL_ADMIN)
    with services.sessions() as session:
        assert list_metrics(session=session) == []
        assert list_experiments(session=session) == []


def test_not_yaml() -> None:
    with pytest.raises(ValidationError, match="not valid YAML"):
        parse_contract("experiment: [unclosed")
