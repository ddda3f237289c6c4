"""Reports: one experiment with 10 metrics × 3 variants, 28 days of daily points and two
pre-registered segment breakdowns, rendered in every format (md, html, pdf, json, csv).

Run: ``python benchmarks/bench_report.py`` (``--units`` to change the size, ``--repeats`` for
more runs).

The snapshot is real: the scenario below is simulated (``splitlab.simulate``), imported into
a fresh data directory, analysed (``analysis.analyze``) and recommended on by the policy
engine (``decisions.service.recommend_experiment``); nothing is hand-made.  Timed:
```render_report`` for each format from the loaded snapshot, recommendation and spec, which
builds the readout, the charts and the document.  Importing fpdf2 (done once per process, on
the first PDF) and the first run are reported apart; the other runs give the median and
spread (min, max) of each format and of all five together.  Target: all formats ≤ 2 s, the
first run included.
"""

from __future__ import annotations

import argparse
import importlib
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from common import open_services

from splitlab.config import Settings
from splitlab.decisions.reports import ReportFormat, load_inputs, render_report
from splitlab.services import Services
from splitlab.simulate import generate, parse_scenario
from splitlab.simulate.run import ensure_running_experiment, import_simulated

SCENARIO = """
name: bench_report
description: Ten metrics, three variants, four weeks, two segment breakdowns
seed: 42
units: 40000
days: 28
arrival: {shape: decay, rate: 0.05}
attributes:
  country: {US: 0.40, GB: 0.15, DE: 0.15, IN: 0.20, BR: 0.10}
  device: {desktop: 0.45, mobile: 0.45, tablet: 0.10}
streams:
  purchase: {occurrence: once, rate: 0.10, value: {dist: lognormal, mean: 45.0, sigma: 0.6}}
  session: {occurrence: poisson, rate: 3.0, value: {dist: gamma, mean: 4.0, cv: 0.7}}
  impression: {occurrence: poisson, rate: 8.0}
  click: {occurrence: poisson, rate: 0.6, value: {dist: constant, mean: 1.0}}
  request: {occurrence: poisson, rate: 6.0, value: {dist: gamma, mean: 120.0, cv: 0.4}}
  refund: {occurrence: once, rate: 0.02}
  ticket: {occurrence: poisson, rate: 0.05}
effects:
  - {variant: fast, stream: purchase, param: rate, lift: 0.12}
  - {variant: fast, stream: click, param: rate, lift: 0.05}
  - {variant: fast, stream: request, param: value, lift: -0.08}
  - {variant: rich, stream: purchase, param: rate, lift: 0.05}
  - {variant: rich, stream: session, param: value, lift: 0.06}
  - {variant: rich, stream: request, param: value, lift: 0.20}
metrics:
  - {key: br-conversion, name: Conversion, kind: binary, event: purchase}
  - {key: br-revenue, name: Revenue per user, kind: sum, event: purchase}
  - {key: br-order-value, name: Order value, kind: ratio, event: purchase,
     denominator_event: purchase}
  - {key: br-sessions, name: Sessions per user, kind: count, event: session}
  - {key: br-session-minutes, name: Session length (min), kind: ratio, event: session,
     denominator_event: session}
  - {key: br-ctr, name: Click-through rate, kind: ratio, event: click,
     denominator_event: impression}
  - {key: br-clicks, name: Clicks per user, kind: count, event: click}
  - {key: br-latency-ms, name: Mean latency (ms), kind: ratio, event: request,
     denominator_event: request, direction: decrease, margin: 0.10}
  - {key: br-refunded, name: Refund rate, kind: binary, event: refund, direction: decrease,
     margin: 0.20}
  - {key: br-tickets, name: Support tickets per user, kind: count, event: ticket,
     direction: decrease, margin: 0.20}
experiment:
  name: Product page redesign (benchmark)
  hypothesis: A faster or a richer product page raises conversion
  predicted_outcome: fast +10% conversion, rich +5%; latency no worse than +10%
  type: feature
  team: growth
  variants:
    - {key: control, weight: 0.34, is_control: true}
    - {key: fast, weight: 0.33}
    - {key: rich, weight: 0.33}
  metrics:
    primary: br-conversion
    secondary: [br-revenue, br-order-value, br-sessions, br-session-minutes, br-ctr, br-clicks]
    guardrails: [br-latency-ms, br-refunded, br-tickets]
  plan: {mde: 0.05, segments: [country, device]}
"""


def build(home: Path, units: int) -> Services:
    settings = Settings(home=home, secret_key="bench", auth="on")
    services = open_services(settings)
    data = generate(parse_scenario(SCENARIO), units=units, start=datetime(2024, 5, 1, tzinfo=UTC))
    ensure_running_experiment(services, data)
    import_simulated(services, [data])
    return services


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=40_000)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        services = build(Path(folder), args.units)
        try:
            inputs = load_inputs(services=services, key="bench_report")
        finally:
            services.close()
        setup = time.perf_counter() - started
    snapshot = inputs.snapshot
    metrics = {r.metric for r in snapshot.results}
    print(f"python {platform.python_version()} on {platform.machine()}")
    print(
        f"snapshot: {len(metrics)} metrics x {len(snapshot.units)} variants, "
        f"{len(snapshot.days)} days, {len(snapshot.results)} result rows "
        f"({sum(1 for r in snapshot.results if r.segment)} in segments), "
        f"{len(snapshot.daily)} daily points; {sum(u.n for u in snapshot.units):,} units; "
        f"recommendation {inputs.recommendation.code.value} (setup {setup:.1f} s)"
    )

    def render(kind: ReportFormat) -> tuple[float, int]:
        t = time.perf_counter()
        content = render_report(
            snapshot=snapshot, recommendation=inputs.recommendation, spec=inputs.spec, format=kind
        )
        return time.perf_counter() - t, len(content)

    import_started = time.perf_counter()
    importlib.import_module("splitlab.decisions.report_pdf")  # fpdf2, Pillow, fontTools

    imported = time.perf_counter() - import_started
    first = {kind: render(kind) for kind in ReportFormat}
    print(
        f"importing fpdf2 (once per process, on the first PDF): {imported:.3f} s; "
        "then the first run: "
        + ", ".join(f"{k.value} {t * 1000:.0f} ms" for k, (t, _) in first.items())
        + f"; all {sum(t for t, _ in first.values()):.3f} s"
    )
    times: dict[ReportFormat, list[float]] = {kind: [] for kind in ReportFormat}
    totals = []
    for _ in range(args.repeats):
        total = 0.0
        for kind in ReportFormat:
            elapsed, _ = render(kind)
            times[kind].append(elapsed)
            total += elapsed
        totals.append(total)
    print(f"{'format':<7}{'bytes':>10}{'median ms':>11}{'min ms':>9}{'max ms':>9}")
    for kind in ReportFormat:
        runs = times[kind]
        print(
            f"{kind.value:<7}{first[kind][1]:>10,}{statistics.median(runs) * 1000:>11.1f}"
            f"{min(runs) * 1000:>9.1f}{max(runs) * 1000:>9.1f}"
        )
    median = statistics.median(totals)
    cold = imported + sum(t for t, _ in first.values())
    met = max(totals) <= 2.0 and cold <= 2.0
    print(
        f"all five formats, {args.repeats} runs: median {median:.3f} s "
        f"(min {min(totals):.3f}, max {max(totals):.3f}); target <= 2 s: "
        f"{'met' if met else 'MISSED'} (first run with the import: {cold:.3f} s)"
    )


if __name__ == "__main__":
    main()
