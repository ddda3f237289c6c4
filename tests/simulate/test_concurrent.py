"""Scenarios with a concurrent experiment: the contract's checks (with field paths), both
experiments' exposures on the same units, each arm by its own experiment's hashing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from splitlab.assignment import assign
from splitlab.assignment.specs import config_from_spec
from splitlab.errors import ValidationError
from splitlab.simulate import generate, load_scenario, parse_scenario
from splitlab.simulate.run import write_parquet

START = datetime(2024, 5, 1, tzinfo=UTC)


def _text(**changes: object) -> str:
    scenario = load_scenario("interacting_experiments").model_dump(mode="json", exclude_unset=True)
    return yaml.safe_dump(scenario | changes)


def test_the_shipped_scenario_parses_and_folds_the_other_arm_into_the_model() -> None:
    scenario = parse_scenario(_text())
    joint = scenario.joint()
    assert joint.attributes["interacting-banner"] == {"control": 0.5, "banner": 0.5}
    assert [e.segment for e in joint.effects] == [
        {},
        {"interacting-banner": "banner"},
        {"interacting-banner": "banner"},
    ]
    assert load_scenario("global_positive").joint() is load_scenario("global_positive")


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        (
            {
                "effects": [
                    {"variant": None, "concurrent": "nope", "stream": "purchase", "lift": 0.1}
                ]
            },
            "effects[0].concurrent",
        ),
        ({"concurrent": {"variants": []}}, "concurrent.key"),
        (
            {
                "concurrent": {
                    "key": "interacting_experiments",
                    "variants": [
                        {"key": "a", "weight": 0.5, "is_control": True},
                        {"key": "b", "weight": 0.5},
                    ],
                }
            },
            "concurrent.key",
        ),
        (
            {
                "concurrent": {
                    "key": "other",
                    "coverage": 0.5,
                    "variants": [
                        {"key": "a", "weight": 0.5, "is_control": True},
                        {"key": "b", "weight": 0.4},
                    ],
                }
            },
            "concurrent.variants",
        ),
    ],
)
def test_a_bad_concurrent_experiment_names_its_field(changes: dict[str, object], path: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_scenario(_text(**changes))
    assert path in {e["path"] for e in caught.value.details}


def test_both_experiments_expose_the_same_units_by_their_own_hashing(tmp_path: Path) -> None:
    data = generate("interacting_experiments", units=2_000, start=START)
    assert data.concurrent is not None and data.concurrent_exposures is not None
    mine = data.exposures.to_pylist()
    other = data.concurrent_exposures.to_pylist()
    assert [r["userKey"] for r in mine] == [r["userKey"] for r in other]
    assert {r["experimentKey"] for r in other} == {"interacting-banner"}
    config = config_from_spec(data.concurrent)
    for row in other[:200]:
        assert assign(config, row["userKey"]).variant == row["variantKey"]
    assert all("interacting-banner" not in (r["props"] or "") for r in mine)
    counts = {v: sum(r["variantKey"] == v for r in other) for v in ("control", "banner")}
    assert 900 < counts["banner"] < 1100
    exposures, _ = write_parquet([data], tmp_path)
    assert pq.read_table(exposures).num_rows == 4_000
