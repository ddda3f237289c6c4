"""Experiment page server time and page weight (issue 15): 10 metrics × 3 variants × 28 days
from a cached snapshot, target ≤ 300 ms (median); page weight, HTML + our JS/CSS (Plotly
excluded), target ≤ 300 KB.

Run alone: ``python benchmarks/bench_experiment_page.py`` (``--repeats``, ``--units``,
``--database-url``); ``bench_web.py`` runs it after the fleet view.

The data is simulated honestly (``splitlab.simulate``): a scenario of three arms, ten metrics
(binary, count, sum, ratio, one lower-is-better guardrail) and two pre-registered segments
over 28 days, imported through the bulk path and analysed once, so the page reads a real
snapshot (results per segment value, 28 cumulative daily points per metric × treatment,
health checks) and a real recommendation.  Timed in process with FastAPI's TestClient
(routing, the handler, the snapshot cache lookup and the watermark query, the stored
recommendation, Jinja rendering; no network).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import line, open_services, server_settings
from fastapi.testclient import TestClient

from splitlab.analysis.service import analyze
from splitlab.app import create_app
from splitlab.decisions.service import recommend_experiment
from splitlab.services import Services
from splitlab.simulate.generator import generate
from splitlab.simulate.run import simulate_into
from splitlab.simulate.scenario import load_scenario

TARGET_MS = 300.0
TARGET_KB = 300.0
KEY = "bench-ten-metrics"
STATIC = Path(__file__).resolve().parent.parent / "src" / "splitlab" / "web" / "static"

SCENARIO = """
name: bench-ten-metrics
description: three arms, ten metrics, 28 days (the experiment page benchmark)
seed: 5
units: {units}
days: 28
attributes:
  country: {{US: 0.40, GB: 0.15, DE: 0.15, IN: 0.20, BR: 0.10}}
  device: {{desktop: 0.45, mobile: 0.45, tablet: 0.10}}
streams:
  purchase: {{occurrence: once, rate: 0.12, value: {{dist: lognormal, mean: 48.0, sigma: 0.5}}}}
  session: {{occurrence: poisson, rate: 3.0, value: {{dist: gamma, mean: 3.8, cv: 0.7}}}}
  click: {{occurrence: poisson, rate: 0.8, value: {{dist: constant, mean: 1.0}}}}
  impression: {{occurrence: poisson, rate: 10.0}}
  request: {{occurrence: poisson, rate: 5.0, value: {{dist: gamma, mean: 120.0, cv: 0.4}}}}
  signup: {{occurrence: once, rate: 0.3}}
effects:
  - {{variant: treatment_a, stream: purchase, param: rate, value: 0.14}}
  - {{variant: treatment_a, stream: request, param: value, lift: 0.05}}
  - {{variant: treatment_b, stream: click, param: rate, lift: 0.03}}
metrics:
  - {{key: b-conversion, name: Conversion, kind: binary, event: purchase}}
  - {{key: b-revenue, name: Revenue per user, kind: sum, event: purchase}}
  - {{key: b-order-value, name: Order value, kind: ratio, event: purchase,
     denominator_event: purchase}}
  - {{key: b-sessions, name: Sessions, kind: count, event: session}}
  - {{key: b-minutes, name: Session minutes, kind: sum, event: session}}
  - {{key: b-clicks, name: Clicks, kind: count, event: click}}
  - {{key: b-ctr, name: Click-through rate, kind: ratio, event: click,
     denominator_event: impression}}
  - {{key: b-signup, name: Signup, kind: binary, event: signup}}
  - {{key: b-impressions, name: Impressions, kind: count, event: impression}}
  - {{key: b-latency, name: Mean latency (ms), kind: ratio, event: request,
     denominator_event: request, direction: decrease, margin: 0.10}}
experiment:
  name: Ten-metric benchmark
  hypothesis: The page stays fast with many metrics
  type: feature
  team: growth
  variants:
    - {{key: control, weight: 0.34, is_control: true}}
    - {{key: treatment_a, weight: 0.33}}
    - {{key: treatment_b, weight: 0.33}}
  metrics:
    primary: b-conversion
    secondary: [b-revenue, b-order-value, b-sessions, b-minutes, b-clicks, b-ctr, b-signup,
                b-impressions]
    guardrails: [b-latency]
  plan: {{engine: frequentist, alpha: 0.05, power: 0.8, mde: 0.05, correction: holm,
         segments: [country, device]}}
"""


def build(services: Services, *, units: int, folder: Path) -> dict[str, Any]:
    """Simulate, import and analyse the benchmark experiment; what was built."""
    path = folder / "bench-ten-metrics.yaml"
    path.write_text(SCENARIO.format(units=units))
    started = time.perf_counter()
    data = generate(load_scenario(path), key=KEY)
    simulate_into(services, data)
    snapshot = analyze(services=services, key=KEY)
    recommend_experiment(services=services, key=KEY)
    metrics = {r.metric for r in snapshot.overall()}
    return {
        "seconds": time.perf_counter() - started,
        "metrics": len(metrics),
        "variants": len(snapshot.units),
        "days": len(snapshot.days),
        "results": len(snapshot.results),
        "daily": len(snapshot.daily),
        "units": sum(u.n for u in snapshot.units),
    }


def _timed(client: TestClient, url: str) -> tuple[float, int]:
    started = time.perf_counter()
    response = client.get(url)
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, response.text[:500]
    return elapsed, len(response.content)


def bench_experiment_page(client: TestClient, *, repeats: int) -> dict[str, Any]:
    """Server time of the experiment page (and its JSON twin and results fragment) from the
    cached snapshot, and the page weight: HTML + experiment.js/css + splitlab.css."""
    urls = {
        "experiment page (cached snapshot)": f"/experiments/{KEY}",
        "its JSON twin": f"/experiments/{KEY}?format=json",
        "results fragment (live refresh)": f"/experiments/{KEY}?fragment=results",
    }
    out: dict[str, Any] = {}
    for name, url in urls.items():
        client.get(url)  # warm-up outside the clock (template compile, first cache fill)
        out[name] = [_timed(client, url)[0] for _ in range(repeats)]
    html = client.get(urls["experiment page (cached snapshot)"]).content
    assets = {
        name: len(client.get(f"/static/{name}").content)
        for name in ("splitlab.css", "experiment.css", "experiment.js")
    }
    out["weight"] = {"html": len(html), **assets}
    return out


def report(results: dict[str, Any]) -> list[str]:
    """The printed lines: times (median, min, max) and the page weight against its target."""
    weight = results.pop("weight")
    lines = ["experiment page (server time, in process):"]
    for index, (name, samples) in enumerate(results.items()):
        lines.append(line(name, samples, TARGET_MS if index == 0 else None, width=36, p90=False))
    total = sum(weight.values()) / 1024
    parts = ", ".join(f"{k} {v / 1024:.1f} KB" for k, v in weight.items())
    verdict = "OK" if total <= TARGET_KB else f"OVER the {TARGET_KB:.0f} KB target"
    lines.append(f"  page weight (Plotly excluded): {total:.1f} KB ({parts})  {verdict}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--units", type=int, default=30_000)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-exp-") as tmp:
        home = Path(tmp)
        services = open_services(server_settings(home, args.database_url))
        try:
            built = build(services, units=args.units, folder=home)
            print(
                f"data: {built['metrics']} metrics × {built['variants']} variants × "
                f"{built['days']} days, {built['units']:,} units; snapshot with "
                f"{built['results']} result rows and {built['daily']} daily points "
                f"(simulated, imported and analysed in {built['seconds']:.1f} s)"
            )
            with TestClient(create_app(services=services)) as client:
                results = bench_experiment_page(client, repeats=args.repeats)
            print("\n".join(report(results)))
        finally:
            services.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
