"""Program views over 1,000 decided experiments from stored snapshots (target ≤ 300 ms,
median): impact (James–Stein), the hypothesis tracker and cost-benefit, plus velocity.

Run on its own: ``python benchmarks/bench_program_views.py`` (``--decided 1000``,
``--repeats 15``, ``--database-url postgresql+psycopg://…``); ``bench_program.py`` runs it
after the leaderboard.

The data, built honestly but cheaply: the demo's eight decided experiments (shipped, killed,
rolled back, rolling out — each with a stated chance to win and costs) are seeded and
analysed from simulated data; then copies of them are created under new keys through the
same audited store functions the demo uses (create, reviews, back-dated transitions, notes)
until ``--decided`` experiments are decided, each given a copy of its original's stored
snapshot payload (``save_snapshot``). So every one has a full-size snapshot, a lifecycle in
the audit log, notes and a prediction — what the program views read.

Timed in process:

* ``program_view()`` (``decisions.program_views``) per view, **cold** (the per-snapshot
  result cache emptied: every newest payload read and its primary result extracted) and
  **warm** (cache filled: experiments, milestones, decisions, notes and recommendations read
  each time) — the warm figure is the target's;
* ``GET /program/{view}?format=json`` and the HTML page through FastAPI's TestClient
  (routing, the handler, figures, Jinja; no network), warm.

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

from common import line, open_services, server_settings, timed_ms
from fastapi.testclient import TestClient

from splitlab.app import create_app
from splitlab.decisions.program import RESULTS, ProgramFilters
from splitlab.decisions.program_views import program_view
from splitlab.services import Services
from splitlab.simulate import demo
from splitlab.store.snapshots import latest_snapshot, save_snapshot

TARGET_MS = 300.0
DECIDED = (demo.S.SHIPPED, demo.S.KILLED, demo.S.ROLLED_BACK, demo.S.ROLLING_OUT)
VIEWS = ("impact", "tracker", "cost-benefit")


def build_decided(services: Services, *, total: int) -> dict[str, Any]:
    """The demo's decided experiments, analysed, and copies of them up to ``total``."""
    started = time.perf_counter()
    originals = [e for e in demo.EXPERIMENTS if e.status in DECIDED]
    demo.seed_demo(services, experiments=originals)
    seeded = time.perf_counter() - started
    now = datetime.now(UTC)
    payloads = {}
    with services.sessions() as session:
        for item in originals:
            row = latest_snapshot(session=session, key=item.key)
            if row is not None:
                payloads[item.key] = row
    made, round_, snapshots = len(originals), 0, len(payloads)
    while made < total:
        round_ += 1
        for item in originals:
            if made >= total:
                break
            copy = dataclasses.replace(item, key=f"{item.key}-v{round_:03d}")
            plan = demo._plan(copy, now)
            demo._until_data(services, plan)
            demo._after_data(services, plan)
            source = payloads.get(item.key)
            if source is not None:
                with services.sessions.begin() as session:
                    save_snapshot(
                        session=session,
                        key=copy.key,
                        settings_hash=source.settings_hash,
                        watermark=source.watermark,
                        payload=dict(source.payload) | {"experiment": copy.key},
                        duration_ms=source.duration_ms,
                    )
                snapshots += 1
            made += 1
    return {
        "decided": made,
        "with_snapshots": snapshots,
        "seed_seconds": seeded,
        "copy_seconds": time.perf_counter() - started - seeded,
    }


def bench_views(services: Services, *, repeats: int) -> list[str]:
    """The timing lines of every program view (see the module docstring)."""
    lines = ["program views (/program/…):"]
    filters = ProgramFilters()
    for view in VIEWS:
        call = partial(
            program_view, services=services, view=view, filters=filters, now=datetime.now(UTC)
        )
        cold = timed_ms(call, max(3, repeats // 3), before=RESULTS.clear)
        warm = timed_ms(call, repeats)
        lines.append(line(f"program_view({view!r}) cold", cold, width=40))
        lines.append(line(f"program_view({view!r}) warm", warm, TARGET_MS, width=40))
    with TestClient(create_app(services=services)) as client:
        for view in (*VIEWS, "velocity"):
            client.get(f"/program/{view}")  # templates compile, caches fill
            as_json = timed_ms(partial(client.get, f"/program/{view}?format=json"), repeats)
            as_html = timed_ms(partial(client.get, f"/program/{view}"), repeats)
            lines.append(line(f"GET /program/{view}?format=json", as_json, TARGET_MS, width=40))
            lines.append(line(f"GET /program/{view} HTML", as_html, TARGET_MS, width=40))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decided", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        services = open_services(server_settings(home, args.database_url))
        try:
            built = build_decided(services, total=args.decided)
            print(
                f"splitlab bench_program_views — Python {platform.python_version()}, "
                f"{platform.machine()}, {'PostgreSQL' if args.database_url else 'SQLite'}"
            )
            print(
                f"  data: {built['decided']} decided experiments ({built['with_snapshots']} with "
                f"a stored snapshot); seeded in {built['seed_seconds']:.1f} s, copies made in "
                f"{built['copy_seconds']:.1f} s"
            )
            print("\n".join(bench_views(services, repeats=args.repeats)))
        finally:
            services.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
