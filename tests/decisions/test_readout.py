"""The deterministic readout: effects in plain words (direction, size, CI, significance after
the correction, lower-is-better metrics judged the right way round), health, recommendation
and its reasons, caveats; text and Markdown renderings."""

from __future__ import annotations

from splitlab.analysis.snapshot import CheckName, Severity
from splitlab.decisions.readout import Readout, build_readout, effect_sentence, metric_infos
from splitlab.decisions.recommendation import BusinessValue, Code, Reason, Stage
from splitlab.domain import Correction, Engine, ExperimentSpec
from tests.decisions.report_helpers import advice
from tests.decisions.snapshots import check, metric, row, snapshot

SPEC = ExperimentSpec(
    key="exp",
    name="Checkout v2",
    hypothesis="A shorter checkout raises conversion",
    predicted_outcome="+5% conversion, latency unchanged",
)


def sentence(snap, r, correction: Correction = Correction.HOLM) -> str:  # type: ignore[no-untyped-def]
    info = metric_infos(snap)[r.metric]
    return effect_sentence(r, info, control="control", alpha=0.05, correction=correction)


def conversion_snapshot(**overrides):  # type: ignore[no-untyped-def]
    r = row("conversion", rel=0.118, ci=(0.061, 0.175), p=0.0002, p_adjusted=0.0004)
    return snapshot(metrics=[metric("conversion")], rows=[r], **overrides), r


def test_a_significant_win_reads_with_its_ci_and_the_correction() -> None:
    snap, r = conversion_snapshot()
    assert sentence(snap, r) == (
        "conversion for treatment vs control rose 11.8% (95% CI 6.1% to 17.5%), significant "
        "after Holm correction (adjusted p < 0.001): an improvement. "
        "Means: 0.1 (control), 0.1118 (treatment)."
    )


def test_lower_is_better_rise_is_a_regression_and_fall_an_improvement() -> None:
    metrics = [metric("latency", "guardrail", direction="decrease", margin=0.1)]
    rise = row("latency", rel=0.30, ci=(0.29, 0.31), p=1e-9, control_mean=120.0)
    fall = row("latency", rel=-0.10, ci=(-0.15, -0.05), p=0.001, control_mean=120.0)
    snap = snapshot(metrics=metrics, rows=[rise])
    assert sentence(snap, rise).startswith(
        "latency for treatment vs control rose 30.0% (95% CI 29.0% to 31.0%), significant after "
        "Holm correction (adjusted p < 0.001): a regression, since lower is better."
    )
    assert "fell 10.0% (95% CI -15.0% to -5.0%)" in sentence(snap, fall)
    assert "an improvement, since lower is better" in sentence(snap, fall)
    # the same numbers on a higher-is-better metric read the other way round
    up = snapshot(metrics=[metric("latency")], rows=[rise])
    assert ": an improvement." in sentence(up, rise)
    not_significant = row("latency", rel=0.02, ci=(-0.01, 0.05), p=0.2, control_mean=120.0)
    text = sentence(snap, not_significant)
    assert "not significant (p = 0.200); lower is better." in text
    assert "regression" not in text and "improvement" not in text


def test_significant_alone_is_not_called_significant_after_the_correction() -> None:
    r = row("conversion", rel=0.05, ci=(0.01, 0.09), p=0.02, p_adjusted=0.08)
    snap = snapshot(metrics=[metric("conversion")], rows=[r])
    assert "significant alone (p = 0.020) but not after Holm correction (adjusted p = 0.080)" in (
        sentence(snap, r)
    )
    assert "improvement" not in sentence(snap, r)
    # without a correction the raw p-value decides
    assert "significant (p = 0.020): an improvement" in sentence(snap, r, Correction.NONE)


def test_no_estimate_and_bayesian_wording() -> None:
    empty = row("conversion", rel=0.0, ci=(0.0, 0.0), p=1.0, reason="n_below_2", rel_effect=None)
    snap = snapshot(metrics=[metric("conversion")], rows=[empty])
    assert sentence(snap, empty) == "conversion for treatment vs control: no estimate (n_below_2)."
    bayes = row(
        "conversion",
        rel=0.04,
        ci=(-0.01, 0.09),
        p=0.1,
        engine=Engine.BAYESIAN,
        chance_to_win=0.93,
        risk_treatment=0.0004,
        credible_low=-0.012,
        credible_high=0.091,
    )
    snap = snapshot(metrics=[metric("conversion")], rows=[bayes], engine=Engine.BAYESIAN)
    assert sentence(snap, bayes) == (
        "conversion for treatment vs control rose 4.0% (95% credible interval -1.2% to 9.1%), "
        "chance to beat control 93.0%, expected loss 0.0004. Means: 0.1 (control), 0.104 "
        "(treatment)."
    )


def test_sections_hypothesis_health_recommendation_and_caveats() -> None:
    snap, _ = conversion_snapshot(
        health=[
            check(CheckName.SRM, Severity.CRITICAL, 1e-6),
            check(CheckName.NOVELTY, Severity.WARNING, 0.01, metric="conversion"),
            check(CheckName.UNDERPOWERED, Severity.WARNING, 0.4),
        ],
        days=7,
    )
    reasons = [
        Reason(stage=Stage.TRUST, code="srm_critical", message="SRM p = 1e-06"),
        Reason(stage=Stage.PRIMARY, code="primary_significant_win", message="won"),
    ]
    readout = build_readout(
        snapshot=snap,
        recommendation=advice(code=Code.INVESTIGATE_INVALID_EXPERIMENT, reasons=reasons),
        spec=SPEC,
    )
    assert [s.key for s in readout.sections] == [
        "hypothesis",
        "results",
        "health",
        "recommendation",
        "caveats",
    ]
    assert readout.title == "Checkout v2"
    assert readout.headline.startswith("HOLD (INVESTIGATE_INVALID_EXPERIMENT)")
    assert readout.section("hypothesis").paragraphs == (
        "Hypothesis: A shorter checkout raises conversion",
        "Predicted outcome: +5% conversion, latency unchanged",
    )
    health = readout.section("health")
    assert health.paragraphs[0].startswith("1 critical and 2 warning finding(s) among 3 checks")
    assert health.bullets[0] == "CRITICAL srm: srm critical"
    assert readout.section("recommendation").bullets == ("trust: SRM p = 1e-06", "primary: won")
    caveats = " ".join(readout.section("caveats").bullets)
    assert "Peeking: these are fixed-horizon p-values" in caveats
    assert "Multiple testing: 1 comparison (metrics x treatments) is corrected" in caveats
    assert "Novelty: novelty warning" in caveats  # the check's own message
    assert "none were pre-registered" in caveats
    assert "Power: underpowered warning" in caveats


def test_caveats_follow_the_plan() -> None:
    r = row("conversion", rel=0.01, ci=(-0.02, 0.04), p=0.5, n_required=50_000, days_remaining=9)
    snap = snapshot(metrics=[metric("conversion")], rows=[r], days=5)
    snap = snap.model_copy(update={"settings": snap.settings | {"segments": ["country"]}})
    caveats = " ".join(
        build_readout(snapshot=snap, recommendation=advice()).section("caveats").bullets
    )
    assert "the planned sample is not reached yet (9 more day(s) needed)" in caveats
    assert "5 day(s) of data cannot show an effect that fades" in caveats
    assert "only the pre-registered breakdowns (country)" in caveats
    sequential = snapshot(metrics=[metric("conversion")], rows=[r], engine=Engine.SEQUENTIAL)
    text = " ".join(
        build_readout(snapshot=sequential, recommendation=advice()).section("caveats").bullets
    )
    assert "always valid, so looking at them daily is safe" in text
    assert "these are fixed-horizon p-values" not in text


def test_missing_spec_and_renderings() -> None:
    r = row("conv*rate", rel=0.118, ci=(0.061, 0.175), p=0.0002)
    snap = snapshot(metrics=[metric("conv*rate")], rows=[r])
    readout = build_readout(snapshot=snap, recommendation=advice())
    assert readout.title == "exp"
    assert "none was written down" in readout.section("hypothesis").paragraphs[0]
    text = readout.to_text()
    assert text.startswith("exp\n===\n\nSHIP (SHIP_GLOBAL)")
    assert "What happened\n-------------\n" in text
    assert "- Primary: conv*rate for treatment vs control rose 11.8%" in text
    markdown = readout.to_markdown()
    assert markdown.startswith("# exp\n\n**SHIP (SHIP\\_GLOBAL)")
    assert "## What happened" in markdown
    assert "conv\\*rate" in markdown  # a metric name cannot start emphasis
    # deterministic, and the JSON form reads back
    again = build_readout(snapshot=snap, recommendation=advice())
    assert again == readout
    assert Readout.model_validate(readout.to_json()) == readout


def test_targeted_segments_and_business_value_are_named() -> None:
    snap, _ = conversion_snapshot()
    recommendation = advice(code=Code.SHIP_TARGETED_SEGMENTS).model_copy(
        update={
            "segments": [{"name": "country", "value": "DE"}],
            "value": [
                BusinessValue(
                    variant="treatment",
                    per_day=1234.5,
                    ci_low=-10.0,
                    ci_high=2500.0,
                    currency="USD",
                )
            ],
        }
    )
    section = build_readout(snapshot=snap, recommendation=recommendation).section("recommendation")
    assert section.paragraphs == (
        "HOLD (SHIP_TARGETED_SEGMENTS): SHIP_TARGETED_SEGMENTS: the summary sentence",
        "Variant: treatment.",
        "Segments to ship to: country = DE.",
        "Expected net value of treatment: 1,234 USD per day (CI -10 to 2,500).",
        "Policy: default (aaaaaaaaaaaa).",
    )
