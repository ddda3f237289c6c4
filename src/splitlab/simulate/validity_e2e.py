"""End-to-end validity: the whole pipeline on generated data with known truth.

Each run is one scenario simulated with its own seed (``splitlab.simulate.generate``), created
as a running experiment in a temporary app store, imported through the bulk import path into
a temporary DuckDB warehouse and analysed by ``splitlab.analysis.analyze`` — the same path a
user's data takes.  Across runs: how often an A/A metric looks significant, how often each
overall relative CI covers the true effect from ``truth.json``, and how often an A/A run
raises a critical health check.  Runs cost about a second each, so their Monte Carlo
standard errors are wider than the vectorised checks'.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from splitlab.simulate.validity_sims import ALPHA, Figure, rate

if TYPE_CHECKING:
    from splitlab.analysis.snapshot import ResultRow, Snapshot

E2E_SCENARIOS = ("aa_null", "global_positive")
E2E_UNITS = 4000


def _pipeline_snapshots(scenario: str, runs: int, seed: int) -> list[tuple[Snapshot, Any]]:
    """(snapshot, simulated data) of ``runs`` runs of ``scenario``, seeds seed … seed + runs − 1."""
    from splitlab.analysis import analyze
    from splitlab.config import Settings
    from splitlab.services import Services
    from splitlab.simulate import generate
    from splitlab.simulate.run import ensure_running_experiment, import_simulated
    from splitlab.store.migrate import upgrade

    home = Path(tempfile.mkdtemp(prefix="splitlab-validate-"))
    services = Services.open(
        Settings(home=home, secret_key="validate", auth="off"), check_schema=False
    )
    try:
        upgrade(services.engine)
        data = [
            generate(
                scenario, units=E2E_UNITS, seed=seed + i, key=f"{scenario}-{i}".replace("_", "-")
            )
            for i in range(runs)
        ]
        for run in data:
            ensure_running_experiment(services, run)
        import_simulated(services, data)
        return [(analyze(services=services, key=run.key), run) for run in data]
    finally:
        services.close()
        shutil.rmtree(home, ignore_errors=True)


def _overall(snapshot: Snapshot) -> list[ResultRow]:
    return [r for r in snapshot.overall() if not r.reason]


def _true_rel(run: Any, entry: ResultRow) -> float:
    truth = run.truth["metrics"][entry.metric]["overall"][entry.variant]
    return float(truth.get("rel_effect", math.nan))


def check_pipeline(runs: int, seed: int) -> list[Figure]:
    """End-to-end figures from ``runs`` runs of each scenario in :data:`E2E_SCENARIOS`."""
    from splitlab.analysis.snapshot import Severity

    out: list[Figure] = []
    for scenario in E2E_SCENARIOS:
        results = _pipeline_snapshots(scenario, runs, seed)
        entries = [(r, run) for snapshot, run in results for r in _overall(snapshot)]
        label = f"pipeline: {runs} runs of {scenario} ({E2E_UNITS:,} units each), every metric"
        truths = np.array([_true_rel(run, r) for r, run in entries])
        low = np.array([r.rel_ci_low for r, _ in entries], dtype=float)  # None → NaN
        high = np.array([r.rel_ci_high for r, _ in entries], dtype=float)
        known = np.isfinite(truths)
        covered = (low <= truths) & (truths <= high)
        out.append(
            rate(
                covered[known],
                "pipeline",
                label,
                "rel_coverage",
                0.95,
                note=f"{int(known.sum())} metric × run comparisons against truth.json",
            )
        )
        if scenario == "aa_null":
            p = np.array([r.p_value for r, _ in entries], dtype=float)
            out.append(
                rate(
                    p < ALPHA,
                    "pipeline",
                    label,
                    "false_positive_rate",
                    ALPHA,
                    note="unadjusted p-values of every metric (a run's metrics share units)",
                )
            )
            critical = [
                any(c.severity is Severity.CRITICAL for c in snapshot.health)
                for snapshot, _ in results
            ]
            out.append(
                rate(
                    np.array(critical),
                    "pipeline",
                    label,
                    "critical_health_rate",
                    0.01,
                    "at_most",
                    "share of A/A runs raising any critical health check",
                )
            )
    return out
