"""The sample-size calculator (``/calculator``, ``GET /api/power``, ``analysis.sizing``):
its numbers against statsmodels, its 4xx answers, the page and its JSON twin."""

from __future__ import annotations

import math
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.power import NormalIndPower, zt_ind_solve_power
from statsmodels.stats.proportion import proportion_effectsize

from splitlab.analysis.sizing import parse_inputs, size
from splitlab.domain import Role
from splitlab.errors import ValidationError
from tests.conftest import Keys
from tests.web.intake_helpers import field_error, log_in

POWER = NormalIndPower()


@pytest.mark.parametrize(
    ("baseline", "mde", "alpha", "power", "sidedness"),
    [
        (0.1, 0.05, 0.05, 0.8, "two-sided"),
        (0.02, 0.2, 0.01, 0.9, "two-sided"),
        (0.5, 0.01, 0.1, 0.8, "two-sided"),
        (0.3, 0.1, 0.05, 0.95, "one-sided"),
    ],
)
def test_proportions_match_statsmodels(
    baseline: float, mde: float, alpha: float, power: float, sidedness: str
) -> None:
    sizing = size(
        parse_inputs(
            {
                "baseline": baseline,
                "mde": mde,
                "alpha": alpha,
                "power": power,
                "sidedness": sidedness,
                "daily_units": 5000,
                "variants": 3,
                "coverage": 0.5,
            }
        )
    )
    alternative = "two-sided" if sidedness == "two-sided" else "larger"
    h = proportion_effectsize(baseline * (1 + mde), baseline)
    exact = POWER.solve_power(effect_size=h, alpha=alpha, power=power, alternative=alternative)
    assert sizing.n_per_variant == math.ceil(exact)
    assert sizing.n_total == 3 * math.ceil(exact)
    assert sizing.days == math.ceil(math.ceil(exact) * 3 / (5000 * 0.5))
    for row in sizing.weeks:
        assert row.n_per_variant == math.floor(5000 * 0.5 * 7 * row.weeks / 3)
        n = 5000 * 0.5 * 7 * row.weeks / 3
        for column, cell in zip(sizing.mde_columns, row.power, strict=True):
            h_cell = proportion_effectsize(baseline * (1 + column), baseline)
            want = POWER.power(h_cell, nobs1=n, alpha=alpha, alternative=alternative)
            assert cell == pytest.approx(want, rel=1e-9)
        # statsmodels' power at the MDE reported is the target (its own solver stops at ~1e-5)
        assert row.mde_at_power is not None
        h_at = proportion_effectsize(baseline * (1 + row.mde_at_power), baseline)
        reached = POWER.power(h_at, nobs1=n, alpha=alpha, alternative=alternative)
        assert reached == pytest.approx(power, abs=1e-9)
        solved = POWER.solve_power(nobs1=n, alpha=alpha, power=power, alternative=alternative)
        assert h_at == pytest.approx(solved, rel=1e-3)
    # the curve passes through the chosen MDE at the target power, and starts at α
    assert sizing.curve[0].power == alpha
    at_mde = POWER.power(h, nobs1=sizing.n_per_variant, alpha=alpha, alternative=alternative)
    assert at_mde >= power


def test_pinned_figures() -> None:
    """Numbers a reader can check by hand or in any calculator (statsmodels 0.15)."""
    proportion = size(parse_inputs({"baseline": 0.1, "mde": 0.05, "daily_units": 10_000}))
    assert (proportion.n_per_variant, proportion.n_total, proportion.days) == (57_756, 115_512, 12)
    mean = size(parse_inputs({"kind": "mean", "baseline": 20, "sd": 30, "mde": 0.1}))
    assert mean.n_per_variant == 3_532  # d = 2/30: 2 (1.959964 + 0.841621)² / d² = 3531.99


@pytest.mark.parametrize("kind", ["mean", "ratio"])
@pytest.mark.parametrize(
    ("baseline", "sd", "mde", "alpha", "power"),
    [(20.0, 30.0, 0.1, 0.05, 0.8), (1.5, 0.4, 0.02, 0.01, 0.9), (300.0, 1000.0, 0.05, 0.1, 0.7)],
)
def test_means_and_ratios_match_statsmodels(
    kind: str, baseline: float, sd: float, mde: float, alpha: float, power: float
) -> None:
    sizing = size(
        parse_inputs(
            {
                "kind": kind,
                "baseline": baseline,
                "sd": sd,
                "mde": mde,
                "alpha": alpha,
                "power": power,
                "daily_units": 20_000,
            }
        )
    )
    d = mde * baseline / sd
    exact = zt_ind_solve_power(effect_size=d, alpha=alpha, power=power)
    assert sizing.n_per_variant == math.ceil(exact)
    assert sizing.absolute_mde == pytest.approx(mde * baseline)
    for row in sizing.weeks:
        n = 20_000 * 7 * row.weeks / 2
        for column, cell in zip(sizing.mde_columns, row.power, strict=True):
            want = POWER.power(column * baseline / sd, nobs1=n, alpha=alpha)
            assert cell == pytest.approx(want, rel=1e-9)
        assert row.mde_at_power is not None
        reached = POWER.power(row.mde_at_power * baseline / sd, nobs1=n, alpha=alpha)
        assert reached == pytest.approx(power, abs=1e-9)
        d_at = zt_ind_solve_power(nobs1=n, alpha=alpha, power=power)
        assert row.mde_at_power == pytest.approx(d_at * sd / baseline, rel=1e-3)  # its brentq


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"baseline": 1.2, "mde": 0.05}, "baseline"),
        ({"baseline": 0.6, "mde": 0.8}, "mde"),
        ({"kind": "mean", "baseline": 3, "mde": 0.05}, "sd"),
        ({"baseline": 0.1, "mde": 0}, "mde"),
        ({"baseline": 0.1, "mde": 0.05, "alpha": 0.7}, "alpha"),
        ({"baseline": 0.1, "mde": 0.05, "power": 1}, "power"),
        ({"baseline": 0.1, "mde": 0.05, "variants": 1}, "variants"),
        ({"baseline": float("nan"), "mde": 0.05}, "baseline"),
        ({"baseline": 0.1, "mde": 0.05, "kind": "median"}, "kind"),
    ],
)
def test_bad_inputs_name_their_field(fields: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_inputs(fields)
    assert [d["loc"][-1] for d in caught.value.details] == [field]


def test_api_power(client: TestClient, admin: dict[str, str]) -> None:
    answer = client.get("/api/power", params={"baseline": 0.1, "mde": 0.05}, headers=admin)
    assert answer.status_code == 200
    assert answer.json()["n_per_variant"] == 57_756
    assert answer.json()["days"] is None and answer.json()["weeks"] == []
    cases: list[tuple[dict[str, Any], str]] = [
        ({"baseline": 1.5, "mde": 0.05}, "baseline"),
        ({"baseline": "ten", "mde": 0.05}, "baseline"),
        ({"kind": "ratio", "baseline": 2, "mde": 0.05}, "sd"),
        ({"baseline": 0.1}, "mde"),
    ]
    for params, field in cases:
        refused = client.get("/api/power", params=params, headers=admin)
        assert refused.status_code == 422, params
        error = refused.json()["error"]
        assert error["code"] == "validation_error"
        assert [d["loc"][-1] for d in error["details"]] == [field]
    assert client.get("/api/power", params={"baseline": 0.1, "mde": 0.05}).status_code == 401


def test_calculator_page_and_twin(client: TestClient, keys: Keys) -> None:
    assert client.get("/calculator", follow_redirects=False).status_code == 303  # log in first
    log_in(client, keys, "vic", Role.VIEWER)  # reading is enough
    page = client.get("/calculator")
    assert page.status_code == 200
    assert "57,756" in page.text  # the defaults: 10% baseline, +5%, 10,000 a day
    assert 'id="power-curve"' in page.text and "weeks-table" in page.text
    assert all(f'for="f-{name}"' in page.text for name in ("baseline", "mde", "alpha", "power"))
    query = {"kind": "mean", "baseline": "20", "sd": "30", "mde": "10", "daily_units": "1000"}
    twin = client.get("/calculator", params=query | {"format": "json"}).json()
    api = client.get(
        "/api/power",
        params={"kind": "mean", "baseline": 20, "sd": 30, "mde": 0.1, "daily_units": 1000},
    ).json()
    assert twin == api
    assert twin["n_per_variant"] == 3_532 and twin["days"] == 8
    wrong = client.get("/calculator", params=query | {"sd": "", "alpha": "2"})
    assert wrong.status_code == 422
    assert field_error(wrong.text, "alpha") == "Input should be less than 0.5"
    assert 'id="f-alpha"' in wrong.text
    assert 'aria-invalid="true"' in wrong.text
    bad_twin = client.get("/calculator", params=query | {"mde": "x", "format": "json"})
    assert bad_twin.status_code == 422
    assert bad_twin.json()["errors"]["fields"] == {"mde": "a number in percent, e.g. 5"}


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["proportion", "mean", "ratio"]),
    baseline=st.floats(1e-9, 1e12),
    sd=st.floats(1e-9, 1e12),
    mde=st.floats(1e-6, 10),
    alpha=st.floats(1e-6, 0.4999),
    power=st.floats(0.5, 0.9999),
    daily_units=st.floats(0.01, 1e10),
    coverage=st.floats(1e-4, 1),
    variants=st.integers(2, 50),
    sidedness=st.sampled_from(["two-sided", "one-sided"]),
)
def test_any_valid_input_gives_an_answer_or_a_field_error(**fields: Any) -> None:
    """Hostile but valid numbers never raise (RuntimeWarnings are errors here) and never give
    a negative size or a power outside [0, 1]; a proportion pushed past 1 is a field error."""
    try:
        inputs = parse_inputs(fields)
    except ValidationError as exc:
        assert [d["loc"] for d in exc.details] in (
            [["baseline"]],
            [["mde"]],
        )
        return
    sizing = size(inputs)
    sizing.model_dump_json()
    assert sizing.n_per_variant is None or sizing.n_per_variant >= 1
    assert sizing.days is None or sizing.days >= 1
    for row in sizing.weeks:
        assert all(p is None or 0 <= p <= 1 for p in row.power)
    assert all(p.power is None or 0 <= p.power <= 1 for p in sizing.curve)
