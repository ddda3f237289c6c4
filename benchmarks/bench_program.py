"""ML and program views from cached snapshots (target ≤ 300 ms, median).

Run: ``python benchmarks/bench_program.py`` (``--experiments 200``, ``--models 5``,
``--repeats 15``, ``--database-url postgresql+psycopg://…`` for PostgreSQL instead of
SQLite).

**Leaderboard** (``/models``, issue #17): 200 experiments × 5 model configurations.  The
data, built honestly but cheaply: the demo's ``distilled-ranker`` (``ml_model_comparison``:
quality, cost per request, p95 latency, CTR) is seeded and analysed from simulated data;
its stored snapshot is widened to ``--models`` arms — each extra arm a copy of the distilled
arm's rows and daily points with its effects, intervals and means scaled by a per-arm factor
(so the CIs stay the analysis's shape and the frontier has something to decide) — and 200
experiments with five variants (payloads naming a model, every other experiment also listing
``cost_per_request``) are created through the audited store functions, each with its own
copy of that snapshot (``save_snapshot``), factors varied per experiment.

Timed in process:

* ``leaderboard()``: ``decisions.leaderboard`` alone, **cold** (its per-snapshot summary
  cache emptied: every payload read and summarised) and **warm** (cache filled: the
  experiment list and the variant payloads only) — the warm figure is the target's;
* ``GET /models?format=json`` and ``GET /models`` (HTML): routing, the handler, sorting,
  sparklines and Jinja rendering through FastAPI's TestClient (no network), warm.

Figures: median of ``--repeats`` runs with min, p90 and max; nothing printed is made up.

Program views (cost-benefit, hypothesis tracker, impact over 1,000 decided experiments) are
another helper's: add their timings under ``# ---- program views`` below, with their own
builder, and print them in ``main`` after the leaderboard's.
"""

from __future__ import annotations

import argparse
import copy
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import line, open_services, timed_ms
from fastapi.testclient import TestClient

from splitlab.app import create_app
from splitlab.config import Settings
from splitlab.decisions import leaderboard as lb
from splitlab.domain import Principal, Role
from splitlab.services import Services
from splitlab.simulate import demo
from splitlab.store.experiments import create_experiment, get_experiment, spec_from_row
from splitlab.store.snapshots import latest_snapshot, save_snapshot

TARGET_MS = 300.0
SOURCE = "distilled-ranker"
ACTOR = Principal(username="bench", role=Role.ADMIN)
MODELS = ("xl-2024-06", "distilled-s", "distilled-m", "quantized-int8", "moe-lite", "tiny")


# ---- leaderboard data


def _scaled(row: dict[str, Any], variant: str, factors: dict[str, float]) -> dict[str, Any]:
    """A copy of a treatment's row for ``variant`` with its effect scaled by its metric's
    factor."""
    out = dict(row) | {"variant": variant}
    factor = factors.get(str(row.get("metric")), 1.0)
    for name in (
        "abs_effect",
        "abs_ci_low",
        "abs_ci_high",
        "rel_effect",
        "rel_ci_low",
        "rel_ci_high",
    ):
        if isinstance(out.get(name), int | float):
            out[name] = out[name] * factor
    if isinstance(out.get("control_mean"), int | float) and isinstance(
        out.get("abs_effect"), int | float
    ):
        out["treatment_mean"] = out["control_mean"] + out["abs_effect"]
    return out


def widen(
    payload: dict[str, Any], *, key: str, arms: int, factors: list[dict[str, float]]
) -> dict[str, Any]:
    """The source snapshot with ``arms`` variants (control + the copies of its treatment)."""
    out = copy.deepcopy(payload) | {"experiment": key}
    control, treatment = out["units"][0]["variant"], out["units"][1]["variant"]
    names = [control] + [f"m{i}" for i in range(1, arms)]
    out["units"] = [
        dict(out["units"][0]) | {"variant": names[0], "weight": 1 / arms},
        *(dict(out["units"][1]) | {"variant": n, "weight": 1 / arms} for n in names[1:]),
    ]
    for part in ("results", "daily"):
        rows = []
        for row in out.get(part, []):
            if row.get("variant") != treatment:
                continue
            rows += [_scaled(row, n, factors[i]) for i, n in enumerate(names[1:])]
        out[part] = rows
    out["settings"] = dict(out["settings"]) | {
        "variants": [{"key": n, "weight": 1 / arms} for n in names]
    }
    return out


def build_leaderboard(services: Services, *, experiments: int, arms: int) -> dict[str, Any]:
    """Seed the source experiment and create ``experiments`` widened copies (docstring)."""
    started = time.perf_counter()
    demo.seed_demo(services, experiments=[e for e in demo.EXPERIMENTS if e.key == SOURCE])
    seeded = time.perf_counter() - started
    with services.sessions() as session:
        stored = latest_snapshot(session=session, key=SOURCE)
        assert stored is not None, "the source experiment has no snapshot"
        payload, settings_hash, watermark = stored.payload, stored.settings_hash, stored.watermark
        spec = spec_from_row(get_experiment(session=session, key=SOURCE))
    metrics = sorted({str(r["metric"]) for r in payload["results"]})
    for i in range(experiments):
        key = f"bench-models-{i:04d}"
        priced = i % 2 == 0
        variants = [
            spec.variants[0].model_copy(
                update={
                    "key": "baseline",
                    "weight": 1 / arms,
                    "payload": {"model": MODELS[0]}
                    | ({"cost_per_request": 0.0021} if priced else {}),
                }
            )
        ]
        for a in range(1, arms):
            payload_ = {"model": MODELS[a % len(MODELS)], "max_tokens": 256 * a}
            if priced:
                payload_["cost_per_request"] = round(0.0021 * (1 - 0.15 * a), 6)
            variants.append(
                spec.variants[1].model_copy(
                    update={"key": f"m{a}", "weight": 1 / arms, "payload": payload_}
                )
            )
        rng = random.Random(i)  # each arm its own trade-off: some dominate others
        factors = [{m: rng.uniform(0.3, 1.9) for m in metrics} for _ in range(1, arms)]
        with services.sessions.begin() as session:
            create_experiment(
                session=session,
                spec=spec.model_copy(update={"key": key, "variants": variants}),
                actor=ACTOR,
            )
            save_snapshot(
                session=session,
                key=key,
                settings_hash=settings_hash,
                watermark=watermark,
                payload=widen(payload, key=key, arms=arms, factors=factors),
                duration_ms=0.0,
            )
    return {"seed_seconds": seeded, "build_seconds": time.perf_counter() - started - seeded}


# ---- program views
# impact, hypothesis tracker, cost-benefit and velocity over ``--decided`` decided experiments:
# ``bench_program_views.py`` builds them in the same stores and times them (``main`` below)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=200)
    parser.add_argument("--models", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--decided", type=int, default=1000, help="program views' experiments")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        url = args.database_url or f"sqlite:///{home / 'app.db'}"
        settings = Settings(
            home=home / "home",
            database_url=url,
            secret_key="bench",
            auth="off",
            scheduler_seconds=0,
            analysis_refresh_seconds=0,
        )
        services = open_services(settings)
        try:
            built = build_leaderboard(services, experiments=args.experiments, arms=args.models)
            entries = lb.leaderboard(services=services)
            mine = [e for e in entries if e.experiment.startswith("bench-models-")]
            print(
                f"splitlab bench_program — Python {platform.python_version()}, "
                f"{platform.machine()}, {'PostgreSQL' if args.database_url else 'SQLite'}"
            )
            print(
                f"  data: {args.experiments} experiments × {args.models} configurations "
                f"({len(mine)} leaderboard rows, {sum(e.frontier for e in mine)} on a frontier); "
                f"seeded in {built['seed_seconds']:.1f} s, built in {built['build_seconds']:.1f} s"
            )
            cold = timed_ms(
                lambda: lb.leaderboard(services=services), args.repeats, before=lb.clear_cache
            )
            warm = timed_ms(lambda: lb.leaderboard(services=services), args.repeats)
            with TestClient(create_app(services=services)) as client:
                client.get("/models")  # the templates compile once
                as_json = timed_ms(
                    lambda: client.get("/models", params={"format": "json"}), args.repeats
                )
                as_html = timed_ms(lambda: client.get("/models"), args.repeats)
            print("leaderboard (/models):")
            print(line("leaderboard() cold", cold))
            print(line("leaderboard() warm", warm, TARGET_MS))
            print(line("GET /models?format=json (warm)", as_json, TARGET_MS))
            print(line("GET /models HTML (warm)", as_html, TARGET_MS))
            # ---- program views: print their lines here
            import bench_program_views as views

            made = views.build_decided(services, total=args.decided)
            print(f"  program views' data: {made['decided']} decided experiments")
            print("\n".join(views.bench_views(services, repeats=args.repeats)))
        finally:
            services.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
