"""The factorial contract: variants whose payload.factors form a full 2^k design, control
low on every factor; every other shape refused at write time with each problem named."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from splitlab.domain import ExperimentSpec
from splitlab.domain.factorial import NotFactorialError, factorial_design


def _variant(key: str, control: bool = False, **factors: Any) -> dict[str, Any]:
    return {"key": key, "weight": 0.25, "is_control": control, "payload": {"factors": factors}}


GOOD = [
    _variant("control", True, layout="old", price="standard"),
    _variant("layout", layout="new", price="standard"),
    _variant("price", layout="old", price="low"),
    _variant("both", layout="new", price="low"),
]


def _spec(variants: list[dict[str, Any]]) -> ExperimentSpec:
    return ExperimentSpec.model_validate({"key": "ff", "variants": variants})


def test_a_full_two_by_two_design_reads_with_control_low() -> None:
    spec = _spec(GOOD)
    design = factorial_design([(v.key, v.payload, v.is_control) for v in spec.variants])
    assert [(f.name, f.low, f.high) for f in design.factors] == [
        ("layout", "old", "new"),
        ("price", "standard", "low"),
    ]
    assert design.signs == {
        "control": (-1, -1),
        "layout": (1, -1),
        "price": (-1, 1),
        "both": (1, 1),
    }
    assert design.levels("both") == {"layout": "new", "price": "low"}


def test_levels_may_be_numbers_or_booleans() -> None:
    variants = [
        (f"v{i}", {"factors": {"cache": cache, "ttl": ttl}}, i == 0)
        for i, (cache, ttl) in enumerate([(False, 30), (True, 30), (False, 60), (True, 60)])
    ]
    design = factorial_design(variants)
    assert [(f.low, f.high) for f in design.factors] == [("false", "true"), ("30", "60")]


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        (GOOD[:3], "2 factors need 4 variants, not 3"),
        (
            [*GOOD[:3], _variant("both", layout="new", price="standard")],
            "set the same levels",
        ),
        (
            [*GOOD[:3], _variant("both", layout="newer", price="low")],
            "factor 'layout' needs exactly two levels, has 3",
        ),
        ([*GOOD[:3], _variant("both", layout="new")], "every variant sets the same factors"),
        (
            [*GOOD[:3], {"key": "both", "weight": 0.25, "payload": {"layout": "new"}}],
            "variant 'both' sets no factors",
        ),
        (
            [*GOOD[:3], _variant("both", layout=["new"], price="low")],
            "a level is a string, number or boolean",
        ),
    ],
)
def test_anything_but_a_full_design_is_refused_with_the_reason(
    variants: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        _spec(variants)


def test_control_must_set_the_low_levels_of_one_design() -> None:
    triples = [(v["key"], v["payload"], False) for v in GOOD]
    with pytest.raises(NotFactorialError, match="exactly one control"):
        factorial_design(triples)
    seven = [
        (f"v{i}", {"factors": {f"f{j}": i >> j & 1 for j in range(7)}}, i == 0) for i in range(128)
    ]
    with pytest.raises(NotFactorialError, match="1 to 6 factors"):
        factorial_design(seven)


def test_experiments_without_factors_are_untouched() -> None:
    spec = _spec([{"key": "a", "weight": 0.5, "is_control": True}, {"key": "b", "weight": 0.5}])
    assert len(spec.variants) == 2
