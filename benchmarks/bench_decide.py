"""How fast the policy engine decides a fleet: 1,000 experiments per refresh.

Run:  .venv/bin/python benchmarks/bench_decide.py

The nine scenarios of the acceptance table are simulated (at up to 10,000 units each) and
analysed once; their snapshots — real shapes: metrics, segments, daily series, health — are
cycled to 1,000 experiments.  Timed, each the median and spread (min–max) of several runs
after a warm-up:

* ``in memory``: ``recommend(snapshot, policy=…, context=…)`` on 1,000 Snapshot objects;
* ``stored rows``: the same from 1,000 stored snapshot rows — the newest row per key without
  its daily series (stripped by the database), JSON text → Snapshot, recommend — in one
  query, and one key per query as ``recommend_experiment`` does on a cache miss;
* ``stored recommendations``: ``latest_recommendations`` of 1,000 experiments (the fleet
  view's one query).

Target: 1,000 decisions ≤ 1 s (in memory and from stored rows).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import common

from splitlab.analysis import analyze
from splitlab.config import Settings
from splitlab.decisions.engine import DecisionContext, recommend
from splitlab.decisions.policy import BUILTIN
from splitlab.decisions.service import latest_recommendations, stored_snapshot
from splitlab.services import Services
from splitlab.simulate import generate, load_scenario
from splitlab.simulate.run import ensure_running_experiment, import_simulated
from splitlab.store.recommendations import latest_snapshot_texts, save_recommendation
from splitlab.store.snapshots import save_snapshot

SCENARIOS = (
    "aa_null",
    "global_positive",
    "guardrail_harm",
    "segment_only_win",
    "srm_invalid",
    "low_power_noisy",
    "latency_regression",
    "multivariant",
    "canary_regression",
)
EXPERIMENTS = 1_000
REPEATS = 7
UNITS = 10_000
START = datetime(2024, 5, 1, tzinfo=UTC)
CONTEXT = DecisionContext(status="running")


def timed(call: Callable[[], object]) -> tuple[float, float, float, float]:
    """(median, min, max) wall seconds and median CPU seconds of ``REPEATS`` runs after a
    warm-up (on a shared machine the wall time moves with the neighbours; CPU time less)."""
    call()
    runs, cpu = [], []
    for _ in range(REPEATS):
        started, started_cpu = time.perf_counter(), time.process_time()
        call()
        runs.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return statistics.median(runs), min(runs), max(runs), statistics.median(cpu)


def open_services(home: Path) -> Services:
    settings = Settings(home=home, secret_key="bench", auth="on")
    return common.open_services(settings)


def report(name: str, figures: tuple[float, float, float, float], target: float | None) -> None:
    median, low, high, cpu = figures
    verdict = "" if target is None else ("  ok" if median <= target else "  ABOVE TARGET")
    print(
        f"  {name:28s} {median * 1e3:8.1f} ms wall (min {low * 1e3:.1f}, max {high * 1e3:.1f}),"
        f" {cpu * 1e3:7.1f} ms CPU  {EXPERIMENTS / median:8,.0f} experiments/s{verdict}"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        services = open_services(Path(folder) / "home")
        try:
            runs = [
                generate(n, units=min(load_scenario(n).units, UNITS), start=START)
                for n in SCENARIOS
            ]
            for data in runs:
                ensure_running_experiment(services, data)
            import_simulated(services, runs)
            base = [analyze(services=services, key=n) for n in SCENARIOS]
            snapshots = [
                base[i % len(base)].model_copy(update={"experiment": f"exp-{i:04d}"})
                for i in range(EXPERIMENTS)
            ]
            keys = [s.experiment for s in snapshots]
            with services.sessions.begin() as session:
                for s in snapshots:
                    row = save_snapshot(
                        session=session,
                        key=s.experiment,
                        settings_hash=s.settings_hash,
                        watermark=s.watermark.key,
                        payload=s.to_json(),
                        duration_ms=s.duration_ms,
                    )
                    rec = recommend(s, policy=BUILTIN, context=CONTEXT)
                    save_recommendation(
                        session=session,
                        key=s.experiment,
                        snapshot_id=row.id,
                        policy_hash=rec.policy_hash,
                        code=rec.code.value,
                        payload=rec.to_json(),
                    )
            size = sum(len(str(s.to_json())) for s in base) / len(base)

            def in_memory() -> None:
                for s in snapshots:
                    recommend(s, policy=BUILTIN, context=CONTEXT)

            def from_rows() -> None:
                with services.sessions() as session:
                    texts = latest_snapshot_texts(session=session, keys=keys)
                for row_id, text in texts.values():
                    snapshot = stored_snapshot(row_id, text)  # as recommend_experiment does
                    assert snapshot is not None
                    recommend(snapshot, policy=BUILTIN, context=CONTEXT)

            def from_rows_one_by_one() -> None:
                for key in keys:
                    with services.sessions() as session:
                        row_id, text = latest_snapshot_texts(session=session, keys=[key])[key]
                    snapshot = stored_snapshot(row_id, text)
                    assert snapshot is not None
                    recommend(snapshot, policy=BUILTIN, context=CONTEXT)

            def stored() -> None:
                assert len(latest_recommendations(services=services, keys=keys)) == EXPERIMENTS

            codes = sorted({recommend(s, policy=BUILTIN, context=CONTEXT).code for s in base})
            print(
                f"decide {EXPERIMENTS:,} experiments ({len(base)} scenario snapshots cycled, "
                f"~{size / 1024:.0f} KiB of JSON each; codes {', '.join(codes)}); "
                f"median of {REPEATS}, target ≤ 1 s"
            )
            report("in memory (Snapshot objects)", timed(in_memory), 1.0)
            report("stored snapshot rows (bulk)", timed(from_rows), 1.0)
            report("stored rows, one by one", timed(from_rows_one_by_one), None)
            report("stored recommendations", timed(stored), None)
        finally:
            services.close()


if __name__ == "__main__":
    main()
