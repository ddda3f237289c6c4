"""Dashboard server time: the fleet view (``/``) over 500 experiments with stored snapshots
and recommendations (target ≤ 300 ms, median).

Run: ``python benchmarks/bench_web.py`` (``--experiments 500``, ``--repeats 15``,
``--database-url postgresql+psycopg://…`` for PostgreSQL instead of SQLite).

The data, built honestly but cheaply: ``splitlab demo``'s twenty experiments are seeded and
analysed (simulated data, real snapshots), the decision engine recommends each; then copies
of them are created under new keys through the same audited store functions the demo uses
(create, reviews, back-dated transitions, notes), each given a copy of its original's stored
snapshot payload (``save_snapshot``) and recommendation (``save_recommendation``). So every
one of the 500 has a full-size snapshot (segments, daily points, health) and a lifecycle in
the audit log — what the fleet view reads.

Timed in process (FastAPI's TestClient: routing, the handler, Jinja rendering; no network):

* **cold**: the first request after the in-process summary cache is emptied — every one of
  the 500 newest snapshot payloads is read and summarised once.
* **warm**: later requests (the cache holds a summary per snapshot id; a new snapshot is
  read on its own) — the figure the target is about.

Figures: median of ``--repeats`` runs with min, p90 and max; nothing printed is made up.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import bench_experiment_page as experiment_page
from common import line, open_services, server_settings, timed_ms
from fastapi.testclient import TestClient

from splitlab.app import create_app
from splitlab.decisions.service import recommend_experiment
from splitlab.services import Services
from splitlab.simulate import demo
from splitlab.store.recommendations import latest_recommendation, save_recommendation
from splitlab.store.snapshots import latest_snapshot, save_snapshot
from splitlab.web import fleet_model

TARGET_MS = 300.0


# ---------------------------------------------------------------- data


def build_fleet(services: Services, *, total: int) -> dict[str, Any]:
    """The demo organisation plus copies of it up to ``total`` experiments (see the module
    docstring); returns what was built and how long it took."""
    started = time.perf_counter()
    report = demo.seed_demo(services)
    analysed = []
    for item in demo.EXPERIMENTS:
        with services.sessions() as session:
            if latest_snapshot(session=session, key=item.key) is not None:
                analysed.append(item.key)
    for key in analysed:
        recommend_experiment(services=services, key=key)
    seeded = time.perf_counter() - started
    now = datetime.now(UTC)
    copies = 0
    round_ = 0
    while len(demo.EXPERIMENTS) + copies < total:
        round_ += 1
        for item in demo.EXPERIMENTS:
            if len(demo.EXPERIMENTS) + copies >= total:
                break
            copy = dataclasses.replace(item, key=f"{item.key}-c{round_:03d}")
            plan = demo._plan(copy, now)
            demo._until_data(services, plan)
            if plan.runs:
                demo._after_data(services, plan)
            _copy_results(services, source=item.key, target=copy.key)
            copies += 1
    return {
        "experiments": len(demo.EXPERIMENTS) + copies,
        "with_snapshots": len(analysed) * (1 + round_),
        "demo_seconds": seeded,
        "copy_seconds": time.perf_counter() - started - seeded,
        "demo_exposures": report.exposures,
    }


def _copy_results(services: Services, *, source: str, target: str) -> None:
    with services.sessions.begin() as session:
        snapshot = latest_snapshot(session=session, key=source)
        if snapshot is None:
            return
        payload = dict(snapshot.payload) | {"experiment": target}
        copied = save_snapshot(
            session=session,
            key=target,
            settings_hash=snapshot.settings_hash,
            watermark=snapshot.watermark,
            payload=payload,
            duration_ms=snapshot.duration_ms,
            status=snapshot.status,
        )
        rec = latest_recommendation(session=session, key=source)
        if rec is not None:
            save_recommendation(
                session=session,
                key=target,
                snapshot_id=copied.id,
                policy_hash=rec.policy_hash,
                code=rec.code,
                payload=dict(rec.payload) | {"experiment": target, "snapshot_id": copied.id},
            )


# ---------------------------------------------------------------- fleet view


def bench_fleet(client: TestClient, *, repeats: int) -> dict[str, Any]:
    """Cold and warm server time of the fleet view and its twins."""
    views = {
        "/ (default: active, 30 days)": "/",
        "/?status=all&range=all (500 listed)": "/?status=all&range=all",
        "JSON twin, all": "/?status=all&range=all&format=json",
        "CSV export, all": "/experiments.csv?status=all&range=all",
    }
    results: dict[str, Any] = {}
    fleet_model.SUMMARIES.clear()
    results["cold"] = timed_ms(lambda: client.get("/"), 1)
    for name, url in views.items():
        client.get(url)  # warm-up outside the clock
        results[name] = timed_ms(partial(client.get, url), repeats)
    results["cold"] += timed_ms(
        lambda: client.get("/"), max(3, repeats // 5), before=fleet_model.SUMMARIES.clear
    )
    html = client.get("/").content
    results["html_bytes"] = len(html)
    return results


# ---------------------------------------------------------------- experiment page
# 10 metrics × 3 variants × 28 days from a cached snapshot (≤ 300 ms) and the page weight
# (HTML + our JS/CSS, Plotly excluded, ≤ 300 KB): ``bench_experiment_page.py`` builds its own
# experiment in the same stores and times it after the fleet view.


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        home = Path(tmp)
        settings = server_settings(home, args.database_url)
        services = open_services(settings)
        try:
            built = build_fleet(services, total=args.experiments)
            print(
                f"bench_web — {platform.python_implementation()} {platform.python_version()}, "
                f"{platform.machine()}, app store {settings.resolved_database_url().split(':')[0]}"
            )
            print(
                f"data: {built['experiments']} experiments, {built['with_snapshots']} with a "
                f"stored snapshot and recommendation (demo seeded and analysed in "
                f"{built['demo_seconds']:.1f} s, copies made in {built['copy_seconds']:.1f} s)"
            )
            with TestClient(create_app(services=services)) as client:
                fleet = bench_fleet(client, repeats=args.repeats)
            print("fleet view (server time, in process):")
            print(line("cold (summary cache empty)", fleet.pop("cold")))
            size = fleet.pop("html_bytes")
            for index, (name, samples) in enumerate(fleet.items()):
                print(line(name, samples, TARGET_MS if index == 0 else None))
            print(f"  default page HTML: {size / 1024:.0f} KB")
            built_page = experiment_page.build(services, units=30_000, folder=home)
            print(
                f"experiment page data: {built_page['metrics']} metrics × "
                f"{built_page['variants']} variants × {built_page['days']} days"
            )
            with TestClient(create_app(services=services)) as client:
                page = experiment_page.bench_experiment_page(client, repeats=args.repeats)
            print("\n".join(experiment_page.report(page)))
        finally:
            services.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
