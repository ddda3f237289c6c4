"""The novelty scenario (a lift that fades with time since each unit's exposure) is read as
novelty: later cohorts, measured for a shorter time, show the larger effect — and the
decision engine keeps it running rather than shipping the inflated lift."""

from __future__ import annotations

from pathlib import Path

from splitlab.analysis import analyze
from splitlab.analysis.snapshot import CheckName, Severity
from splitlab.decisions.recommendation import Code
from splitlab.decisions.service import recommend_experiment
from splitlab.simulate import generate
from splitlab.simulate.run import ensure_running_experiment, import_simulated
from tests.simulate.conftest import START, open_services


def test_a_fading_lift_is_called_novelty(tmp_path: Path) -> None:
    services = open_services(tmp_path)
    try:
        data = generate("novelty_effect", units=20_000, start=START)
        ensure_running_experiment(services, data)
        import_simulated(services, [data])
        snapshot = analyze(services=services, key="novelty_effect")
        advice = recommend_experiment(services=services, key="novelty_effect")
    finally:
        services.close()
    (finding,) = [c for c in snapshot.checks(CheckName.NOVELTY) if c.metric == "nv-clicks"]
    assert finding.severity is Severity.WARNING
    assert "units exposed later show a larger effect" in finding.message
    assert "novelty effect" in finding.message and "primacy" not in finding.message
    # while it runs, the decision engine waits for the lift to settle instead of shipping +27%
    assert advice.code is Code.KEEP_RUNNING
    assert "novelty_settling" in [r.code for r in advice.reasons]
