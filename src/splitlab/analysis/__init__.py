"""Analysis: experiment configuration + warehouse aggregates → results, health, snapshots."""

from splitlab.analysis.plan import AnalysisPlan, PlannedMetric, build_plan
from splitlab.analysis.service import analyze, latest, refresh_running, run_analysis, select_view

__all__ = [
    "AnalysisPlan",
    "PlannedMetric",
    "analyze",
    "build_plan",
    "latest",
    "refresh_running",
    "run_analysis",
    "select_view",
]
