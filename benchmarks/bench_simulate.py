"""Simulator throughput: generate + import 1,000,000 units and ~5,000,000 events into the
DuckDB default, end to end (target ≥ 500,000 events/s, i.e. ≤ 10 s); and a full
``splitlab demo`` on a fresh data directory (target ≤ 60 s).

Run: ``python benchmarks/bench_simulate.py`` (``--quick`` for a smoke run, ``--runs N``).

Each run uses a fresh data directory. Printed per phase: the median and the spread (min–max)
over the runs of the wall time and of the process's CPU time (all threads: on a shared
machine the CPU seconds move less than the wall seconds), and the load average before and
after. As a peer measured in the same run (same load): the plain importer on its own
benchmark file with as many rows as the run has events, into another fresh data directory.

Where the time goes (2 shared cores, load 2–3, A/B against the code before in alternation,
4 runs each; median wall s): generate 2.7 (4.3 before), Parquet 1.5 (1.7), exposures import
10.2 (11.9), events import 17.6 (17.6), total 32.0 (34.9) = 156,000 events/s. The events
step imports at the plain importer's own rate (its benchmark file, same run: ~265,000 rows/s
each); its CPU is the importer's validation (~8.5 s), the insert into the ``event_id``-keyed
table (~11 s; DuckDB inserts into an indexed table on one thread) and the commit (~3 s).
Exposures cost ~10 µs each: their key is ``md5(experiment, unit)``, and random 32-character
keys cost DuckDB's index ~3.5× what sequential ids do (1M md5 keys 5.5 CPU-s, 5M sequential
ids 7.8). So the ≥ 500,000 events/s target is out of reach on this layout: the two keyed
inserts alone take longer than 10 s here.
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
from typing import Any

import common

from splitlab.config import Settings
from splitlab.services import Services
from splitlab.simulate import generate, load_scenario
from splitlab.simulate.run import ensure_running_experiment, import_run, write_parquet


def bench_scenario(units: int) -> object:
    """global_positive with ~4.9 sessions per unit: ~5 events per unit in all."""
    scenario = load_scenario("global_positive")
    streams = dict(scenario.streams)
    streams["session"] = streams["session"].model_copy(update={"rate": 4.75})
    return scenario.model_copy(update={"streams": streams, "units": units})


def open_services(home: Path) -> Services:
    settings = Settings(home=home, secret_key="bench", auth="on")
    return common.open_services(settings)


PHASES = ("generate", "experiment", "parquet", "exposures", "events", "total")


def one_simulation(units: int, *, peer: bool) -> dict[str, float]:
    """Seconds (wall and ``cpu_`` CPU) per phase of one simulate + import, and with ``peer``
    the plain importer's on as many rows (``peer``, wall seconds)."""
    with tempfile.TemporaryDirectory() as folder:
        services = open_services(Path(folder) / "home")
        marks: list[tuple[float, float]] = []

        def mark() -> None:
            marks.append((time.perf_counter(), time.process_time()))

        importer = services.warehouse.import_file

        def import_file(path: Path, **options: Any) -> Any:  # times each kind's import
            report = importer(path, **options)
            mark()
            return report

        services.warehouse.import_file = import_file  # type: ignore[method-assign]
        try:
            mark()
            data = generate(bench_scenario(units), key="bench-sim")  # type: ignore[arg-type]
            mark()
            ensure_running_experiment(services, data)
            mark()
            files = write_parquet([data], Path(folder) / "parquet")
            mark()
            exposures, events = import_run(services, *files)
        finally:
            services.close()
        result = {"events_count": float(data.events.num_rows)}
        for i, phase in enumerate(PHASES[:-1]):
            result[phase] = marks[i + 1][0] - marks[i][0]
            result["cpu_" + phase] = marks[i + 1][1] - marks[i][1]
        result["total"] = marks[-1][0] - marks[0][0]
        result["cpu_total"] = marks[-1][1] - marks[0][1]
        if peer:
            result["peer"] = plain_import(Path(folder) / "peer", data, data.events.num_rows)
    assert exposures.accepted == data.exposures.num_rows
    assert events.accepted == data.events.num_rows
    return result


def plain_import(home: Path, data: Any, rows: int) -> float:
    """Wall seconds of the plain importer's own benchmark file (``bench_ingest.py``: one
    experiment, ``user-N`` units, ``imp-N`` ids, no variant or props) of ``rows`` rows,
    imported as ``splitlab import events`` does into a fresh data directory."""
    import duckdb

    from splitlab.store.live import experiment_summaries

    path = home / "plain.parquet"
    home.mkdir(parents=True)
    duckdb.sql(
        f"""COPY (SELECT '{data.key}' AS experimentKey, 'user-' || (i % 1000000) AS userKey,
                  'purchase' AS eventType, (i % 100)::DOUBLE AS value, 'imp-' || i AS eventId,
                  now() AS occurredAt
           FROM range({rows}) r(i)) TO '{path}' (FORMAT parquet)"""
    )
    services = open_services(home)
    try:
        ensure_running_experiment(services, data)
        with services.sessions() as session:
            summaries = experiment_summaries(session=session)
        started = time.perf_counter()
        report = services.warehouse.import_file(path, kind="events", experiments=summaries)
        elapsed = time.perf_counter() - started
    finally:
        services.close()
    assert report.accepted == rows
    return elapsed


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
    parser.add_argument("--no-peer", action="store_true", help="skip the plain-import peer")
    args = parser.parse_args()
    units = 100_000 if args.quick else args.units
    runs = 1 if args.quick else args.runs
    print(f"python {platform.python_version()}, {os.cpu_count()} cores")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    generate(bench_scenario(1_000), key="warm-up")  # imports and caches outside the clock
    results = [one_simulation(units, peer=not args.no_peer) for _ in range(runs)]
    events = results[0]["events_count"]
    print(f"\nsimulate + import {units:,} units, {events:,.0f} events ({runs} run(s), seconds):")
    for phase in PHASES:
        print(
            f"  {phase:<11} {spread([r[phase] for r in results])}  "
            f"CPU {spread([r['cpu_' + phase] for r in results])}"
        )
    rates = [r["events_count"] / r["total"] for r in results]
    print(
        f"  events/s    median {statistics.median(rates):,.0f}  "
        f"(min {min(rates):,.0f}, max {max(rates):,.0f}); target ≥ 500,000"
    )
    if not args.no_peer:
        peer = [r["events_count"] / r["peer"] for r in results]
        ours = [r["events_count"] / r["events"] for r in results]
        print("the events step against the plain importer on its benchmark file (rows/s):")
        for label, rates in (("events step", ours), ("plain file", peer)):
            print(
                f"  {label:<11} median {statistics.median(rates):,.0f}  "
                f"(min {min(rates):,.0f}, max {max(rates):,.0f})"
            )
    if not args.no_demo:
        demos = [one_demo() for _ in range(runs)]
        print(f"\nsplitlab demo on a fresh data directory ({runs} run(s), seconds):")
        print(f"  demo        {spread(demos)}; target ≤ 60")
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
