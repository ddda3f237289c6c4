"""The novelty scenario (a lift that fades with time since each unit's exposure) is read as
novelty: later cohorts, measured for a shorter time, show the larger effect — and the
decision engine keeps it running rather than shipping the inflated lift."""

from __future__ import annotations

from pathlib import Path

from splitlab.analysis.snapshot import CheckName, Severity
from splitlab.decisions.recommendation import Code
from tests.simulate.conftest import analysed_scenario


def test_a_fading_lift_is_called_novelty(tmp_path: Path) -> None:
    snapshot, advice = analysed_scenario(tmp_path, "novelty_effect", units=20_000, recommend=True)
    (finding,) = [c for c in snapshot.checks(CheckName.NOVELTY) if c.metric == "nv-clicks"]
    assert finding.severity is Severity.WARNING and finding.fading is True
    assert "units exposed later show a larger effect" in finding.message
    assert "novelty effect" in finding.message and "primacy" not in finding.message
    # while it runs, the decision engine waits for the lift to settle instead of shipping +27%
    assert advice.code is Code.KEEP_RUNNING
    assert "novelty_settling" in [r.code for r in advice.reasons]


def test_a_snapshot_stored_before_the_fading_mark_still_holds(tmp_path: Path) -> None:
    """A novelty warning stored before ``fading`` existed says it only in words; the decision
    engine still reads it, and a warning marked not fading does not hold."""
    from splitlab.decisions.engine import _fading_primary

    snapshot = analysed_scenario(tmp_path, "novelty_effect", units=20_000)
    (finding,) = [c for c in snapshot.checks(CheckName.NOVELTY) if c.metric == "nv-clicks"]
    stored = {k: v for k, v in finding.to_json().items() if k != "fading"}
    old = type(finding).model_validate(stored)  # as stored before the mark existed
    assert old.fading is None

    class Primary:
        key = "nv-clicks"

    class Run:
        primary = Primary()

        def __init__(self, check: object) -> None:
            self.snapshot = snapshot.model_copy(update={"health": (check,)})

    assert _fading_primary(Run(old)) == old  # type: ignore[arg-type]
    denied = finding.model_copy(update={"fading": False})
    assert _fading_primary(Run(denied)) is None  # type: ignore[arg-type]
