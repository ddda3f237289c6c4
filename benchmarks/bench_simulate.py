"""Simulator throughput: generate + import 1,000,000 units and ~5,000,000 events into the
DuckDB default, end to end (target ≥ 500,000 events/s, i.e. ≤ 10 s); and a full
``splitlab demo`` on a fresh data directory (target ≤ 60 s).

Run: ``python benchmarks/bench_simulate.py`` (``--quick`` for a smoke run, ``--runs N``).

Each run uses a fresh data directory. Printed per phase: the median and the spread (min–max)
over the runs, and the load average before and after (the machine may be shared).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from splitlab.config import Settings
from splitlab.services import Services
from splitlab.simulate import generate, load_scenario
from splitlab.simulate.run import ensure_running_experiment, import_run, write_parquet
from splitlab.store.db import make_engine
from splitlab.store.migrate import upgrade


def bench_scenario(units: int) -> object:
    """global_positive with ~4.9 sessions per unit: ~5 events per unit in all."""
    scenario = load_scenario("global_positive")
    streams = dict(scenario.streams)
    streams["session"] = streams["session"].model_copy(update={"rate": 4.75})
    return scenario.model_copy(update={"streams": streams, "units": units})


def open_services(home: Path) -> Services:
    settings = Settings(home=home, secret_key="bench", auth="on")
    engine = make_engine(settings.resolved_database_url())
    upgrade(engine)
    engine.dispose()
    return Services.open(settings)


def one_simulation(units: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        services = open_services(Path(folder) / "home")
        try:
            started = time.perf_counter()
            data = generate(bench_scenario(units), key="bench-sim")  # type: ignore[arg-type]
            generated = time.perf_counter()
            ensure_running_experiment(services, data)
            created = time.perf_counter()
            files = write_parquet([data], Path(folder) / "parquet")
            written = time.perf_counter()
            exposures, events = import_run(services, *files)
            done = time.perf_counter()
        finally:
            services.close()
    assert exposures.accepted == data.exposures.num_rows
    assert events.accepted == data.events.num_rows
    return {
        "events": float(data.events.num_rows),
        "generate": generated - started,
        "experiment": created - generated,
        "parquet": written - created,
        "import": done - written,
        "total": done - started,
    }


def one_demo() -> float:
    with tempfile.TemporaryDirectory() as folder:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPLITLAB_")}
        env["SPLITLAB_HOME"] = str(Path(folder) / "home")
        cli = [sys.executable, "-m", "splitlab.cli"]
        subprocess.run([*cli, "init"], env=env, check=True, capture_output=True)
        started = time.perf_counter()
        done = subprocess.run([*cli, "demo"], env=env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"splitlab demo failed:\n{done.stdout}{done.stderr}")
        return time.perf_counter() - started


def spread(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"median {statistics.median(values):7.2f}  (min {low:.2f}, max {high:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100,000 units, one run each")
    parser.add_argument("--runs", type=int, default=3, help="runs of each benchmark")
    parser.add_argument("--units", type=int, default=1_000_000)
    parser.add_argument("--no-demo", action="store_true", help="skip the demo timing")
    args = parser.parse_args()
    units = 100_000 if args.quick else args.units
    runs = 1 if args.quick else args.runs
    print(f"python {platform.python_version()}, {os.cpu_count()} cores")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    results = [one_simulation(units) for _ in range(runs)]
    events = results[0]["events"]
    print(f"\nsimulate + import {units:,} units, {events:,.0f} events ({runs} run(s), seconds):")
    for phase in ("generate", "experiment", "parquet", "import", "total"):
        print(f"  {phase:<11} {spread([r[phase] for r in results])}")
    rates = [r["events"] / r["total"] for r in results]
    print(
        f"  events/s    median {statistics.median(rates):,.0f}  "
        f"(min {min(rates):,.0f}, max {max(rates):,.0f}); target ≥ 500,000"
    )
    if not args.no_demo:
        demos = [one_demo() for _ in range(runs)]
        print(f"\nsplitlab demo on a fresh data directory ({runs} run(s), seconds):")
        print(f"  demo        {spread(demos)}; target ≤ 60")
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
