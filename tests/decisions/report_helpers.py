"""Builders for the readout and report tests: recommendations made by hand, and experiments
simulated into a data directory and analysed (real snapshots, not hand-built ones)."""

from __future__ import annotations

from datetime import UTC, datetime

from splitlab.decisions.recommendation import Code, Reason, Recommendation, Stage
from splitlab.services import Services
from splitlab.simulate import generate
from splitlab.simulate.run import ensure_running_experiment, import_simulated

START = datetime(2024, 5, 1, tzinfo=UTC)


def advice(
    key: str = "exp",
    code: Code = Code.SHIP_GLOBAL,
    *,
    variant: str | None = "treatment",
    reasons: list[Reason] | None = None,
    snapshot_id: int | None = 1,
    policy_hash: str = "a" * 32,
) -> Recommendation:
    """A recommendation as the engine would make it, with one reason of the primary stage
    unless ``reasons`` are given."""
    return Recommendation(
        experiment=key,
        code=code,
        label={"SHIP_GLOBAL": "SHIP", "HOLD_GUARDRAIL_RISK": "DO NOT SHIP"}.get(code.value, "HOLD"),
        summary=f"{code.value}: the summary sentence",
        variant=variant,
        reasons=reasons
        if reasons is not None
        else [
            Reason(
                stage=Stage.PRIMARY,
                code="primary_significant_win",
                message="conversion won by 11.8%",
                metric="conversion",
                variant=variant,
                evidence={"rel_effect": 0.118},
            )
        ],
        evidence={"deciding": {"metric": "conversion"}},
        policy="default",
        policy_hash=policy_hash,
        snapshot_id=snapshot_id,
    )


def simulate(services: Services, scenario: str, *, units: int = 3000, days: int = 14) -> str:
    """Run ``scenario`` at ``units`` units into ``services`` (experiment running, data
    imported); returns the experiment key."""
    data = generate(scenario, units=units, days=days, start=START)
    ensure_running_experiment(services, data)
    import_simulated(services, [data])
    return data.key
