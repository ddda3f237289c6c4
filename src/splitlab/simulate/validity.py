"""The statistical validity suite behind ``splitlab validate``.

Runs every Monte Carlo check (``validity_sims``, ``validity_peeking``) with ``sims``
simulated experiments each, seeded per check so a check's figures do not depend on which
other checks ran, and renders the figures as a table and as the ``validity.json`` document.
``docs/validity.md`` records a full run and what its figures mean.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from splitlab.simulate.validity_peeking import (
    check_bayesian,
    check_msprt,
    check_sequential,
    check_sprt,
    check_srm,
)
from splitlab.simulate.validity_sims import (
    Figure,
    check_cuped,
    check_quantile,
    check_ratio,
    check_welch,
    check_ztest,
)

Check = Callable[[np.random.Generator, int], list[Figure]]

CHECKS: dict[str, Check] = {
    "z": check_ztest,
    "welch": check_welch,
    "cuped": check_cuped,
    "ratio": check_ratio,
    "quantile": check_quantile,
    "sequential": check_sequential,
    "msprt": check_msprt,
    "sprt": check_sprt,
    "bayesian": check_bayesian,
    "srm": check_srm,
}
"""Every check by name, in the order the table lists them."""

DEFAULT_SIMS = 10_000


@dataclass
class ValidityReport:
    """The figures of one run, with its settings and the seconds each check took."""

    sims: int
    seed: int
    pipeline_runs: int = 0
    figures: list[Figure] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def off(self) -> list[Figure]:
        """Figures outside their tolerance band."""
        return [f for f in self.figures if f.status == "off"]

    def to_json(self) -> dict[str, Any]:
        """The ``validity.json`` document."""
        return {
            "sims": self.sims,
            "seed": self.seed,
            "pipeline_runs": self.pipeline_runs,
            "alpha": 0.05,
            "tolerance": "ok within 3 Monte Carlo standard errors + 0.5 points of the target",
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "figures": [{**asdict(f), "status": f.status} for f in self.figures],
        }


def check_rng(seed: int, name: str) -> np.random.Generator:
    """The generator of one check: seeded by the run's seed and the check's name only."""
    return np.random.default_rng(
        np.random.SeedSequence(seed, spawn_key=(zlib.crc32(name.encode()),))
    )


def run_validity(
    *,
    sims: int = DEFAULT_SIMS,
    seed: int = 0,
    checks: Sequence[str] | None = None,
    pipeline_runs: int = 0,
) -> ValidityReport:
    """Run the named ``checks`` (all by default) with ``sims`` simulated experiments each,
    then ``pipeline_runs`` end-to-end runs per scenario of ``validity_e2e`` (0: none)."""
    names = list(CHECKS) if checks is None else list(checks)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise ValueError(f"unknown check(s) {', '.join(unknown)}; known: {', '.join(CHECKS)}")
    if sims < 100:
        raise ValueError("sims must be at least 100")
    report = ValidityReport(sims=sims, seed=seed, pipeline_runs=pipeline_runs)
    for name in names:
        started = time.perf_counter()
        report.figures += CHECKS[name](check_rng(seed, name), sims)
        report.seconds[name] = time.perf_counter() - started
    if pipeline_runs > 0:
        from splitlab.simulate.validity_e2e import check_pipeline

        started = time.perf_counter()
        report.figures += check_pipeline(pipeline_runs, seed)
        report.seconds["pipeline"] = time.perf_counter() - started
    return report


def _pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def _value(f: Figure) -> tuple[str, str]:
    if f.measure.endswith("ratio") or f.measure.startswith("reported"):
        return f"{f.value:.4f} ± {f.mc_se:.4f}", f"{f.target:.4f}"
    return f"{_pct(f.value)} ± {_pct(f.mc_se)}", _pct(f.target)


def table_rows(report: ValidityReport) -> list[list[str]]:
    """One row per figure: method, measure, value ± MC SE, target, status."""
    rows = []
    for f in report.figures:
        value, target = _value(f)
        bound = {"at_most": "≤ ", "at_least": "≥ "}.get(f.rule, "")
        rows.append([f.method, f.measure, value, bound + target, f.status])
    return rows


HEADER = ["method", "measure", "value ± MC SE", "target", "status"]


def render_table(report: ValidityReport) -> str:
    """The figures as a fixed-width text table grouped by simulated scenario, with the notes
    below."""
    rows = table_rows(report)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(HEADER)]
    lines = [
        f"Validity suite: {report.sims:,} simulations per check, seed {report.seed}"
        + (f", {report.pipeline_runs} pipeline runs per scenario" if report.pipeline_runs else ""),
        "",
        "  ".join(h.ljust(w) for h, w in zip(HEADER, widths, strict=True)).rstrip(),
        "  ".join("-" * w for w in widths),
    ]
    scenario = None
    for f, row in zip(report.figures, rows, strict=True):
        if f.scenario != scenario:
            scenario = f.scenario
            lines.append(f"# {scenario}")
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    notes = [f for f in report.figures if f.note]
    if notes:
        lines += ["", "Notes"]
        lines += [f"  {f.method} {f.measure}: {f.note}" for f in notes]
    off = report.off
    lines += [
        "",
        f"{len(off)} figure(s) outside their tolerance band"
        + (": " + ", ".join(f"{f.method} {f.measure}" for f in off) if off else "."),
    ]
    return "\n".join(lines) + "\n"
