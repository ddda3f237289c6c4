"""Analysis pipeline: raw events → full analysis (cold), cached snapshot, PostgreSQL, and the
nearest peer pipeline (DuckDB per-unit table + tea-tasting) on the same data.

Run: ``python benchmarks/bench_analysis.py`` (``--quick`` for a 100k-unit smoke run,
``--no-postgres`` to skip PostgreSQL, ``--postgres-url`` to choose the server).

Data (made directly in the warehouse with DuckDB SQL): 1,000,000 exposed units in 3 variants,
5,000,000 events, one 5-value segment, 28 days; 5 metrics — binary, count, sum with CUPED,
ratio (revenue per session) and p95 quantile (latency).  Each unit also carries a platform
(3 values) and a numeric ``hist_rev`` attribute.

* **cold**: a new ``Services`` (new warehouse connection, nothing cached in the process) and
  ``analyze(refresh=True)``: the one warehouse query, the quantile query, statistics for
  overall, 5 segment values, the crossed segment country × platform (15 cells) and 28 days,
  two named covariates (``hist_rev`` from the exposure attributes, capped at its 99th
  percentile, and the orders of the 14 days before exposure) adjusting the binary, count and
  sum metrics by regression, heterogeneity tests, health checks, and storing the snapshot.
* **peer work**: Splitlab on exactly the peer's work — the same four metrics (no quantile), no
  segments, no daily series — from raw events: ``run_analysis`` (plan with ``daily=False``;
  nothing stored) on a warehouse connection opened once, in turns with the 4-metric peer on
  its own connection opened once (as the peer's pipeline documents), so both meet the same
  machine noise; the figure is the median of each pair's ratio.
* **cached**: ``analyze()`` with unchanged data and settings: the watermark query plus the
  snapshot lookup.
* **novelty view**: the days-since-exposure view beside that snapshot, computed on demand
  (the experiment page's first view after an analysis pays it; later views hit its cache).
* **peer**: DuckDB builds the per-unit table of the same five metrics (same windows), then
  tea-tasting analyses it (no segments, no days) — the pipeline tea-tasting documents.
  tea-tasting's ``Quantile`` is a bootstrap on raw values; its resample count is printed.

Figures are the median of ``--repeats`` runs with their spread (min–max); nothing is faked:
every number printed is measured here.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from splitlab.analysis import analyze, build_plan, novelty, run_analysis
from splitlab.analysis.novelty import exposure_day_view
from splitlab.analysis.snapshot import Snapshot
from splitlab.config import Settings
from splitlab.domain import ExperimentSpec, MetricDefinition, Principal, Role
from splitlab.services import Services
from splitlab.store.db import make_engine
from splitlab.store.experiments import create_experiment
from splitlab.store.metrics import upsert_metric
from splitlab.store.migrate import upgrade
from splitlab.warehouse import Warehouse

KEY = "bench"
WINDOW_HOURS = 7 * 24
METRICS = [
    MetricDefinition(key="converted", kind="binary", event="purchase", window_hours=WINDOW_HOURS),
    MetricDefinition(key="orders", kind="count", event="purchase", window_hours=WINDOW_HOURS),
    MetricDefinition(
        key="revenue", kind="sum", event="purchase", window_hours=WINDOW_HOURS, cuped_days=14
    ),
    MetricDefinition(
        key="revenue_per_session",
        kind="ratio",
        event="purchase",
        denominator_event="session",
        window_hours=WINDOW_HOURS,
    ),
    MetricDefinition(
        key="latency_p95", kind="quantile", event="page_load", quantile=0.95, direction="decrease"
    ),
]
SPEC = {
    "key": KEY,
    "variants": [
        {"key": "control", "weight": 1 / 3, "is_control": True},
        {"key": "b", "weight": 1 / 3},
        {"key": "c", "weight": 1 / 3},
    ],
    "metrics": {
        "primary": "converted",
        "secondary": ["orders", "revenue", "revenue_per_session"],
        "guardrails": [{"key": "latency_p95", "margin": 0.25}],
    },
    "plan": {
        "segments": ["country"],
        "crossed": [["country", "platform"]],
        "covariates": [
            {
                "name": "hist_rev",
                "attribute": "hist_rev",
                "capping": {"type": "percentile", "value": 0.99},
            },
            {"name": "pre_orders", "metric": "orders", "days": 14},
        ],
        "mde": 0.02,
    },
    "start_at": "2024-01-01T00:00:00+00:00",
}
PEER_SPEC = {
    **SPEC,
    "metrics": {"primary": "converted", "secondary": ["orders", "revenue", "revenue_per_session"]},
    "plan": {"mde": 0.02},
}
"""The peer's work: the same four metrics (revenue with its CUPED pre-period), no segments."""

GENERATE = """
SELECT setseed(0.42);
CREATE TEMP TABLE bench_units AS
SELECT i,
       'u' || i AS unit_id,
       ['control', 'b', 'c'][1 + (hash(i) % 3)::INT] AS variant,
       TIMESTAMPTZ '2024-01-01 00:00:00+00'
         + to_microseconds(CAST(floor(random() * 28 * 86400e6) AS BIGINT)) AS exposed_at,
       ['de', 'fr', 'us', 'uk', 'jp'][1 + floor(random() * 5)::INT] AS country,
       ['ios', 'android', 'web'][1 + floor(random() * 3)::INT] AS platform,
       random() AS propensity
FROM range({units}) t(i);

INSERT INTO exposures
SELECT 'x' || i, '{key}', variant, unit_id, exposed_at,
       json_object('country', country, 'platform', platform,
                   'hist_rev', round(200 * propensity * random(), 2)), 'bench', NULL, now()
FROM bench_units;

CREATE TEMP TABLE bench_picks AS
SELECT r.range AS k, kind, (hash(r.range * 7 + kind_id) % {units})::BIGINT AS i, random() AS a,
       random() AS b
FROM (VALUES ('purchase', 1, {purchases}), ('pre', 2, {pre}), ('session', 3, {sessions}),
             ('page_load', 4, {loads})) v(kind, kind_id, n),
     LATERAL range(n) r;

INSERT INTO events
SELECT p.kind || p.k, u.unit_id,
       CASE p.kind WHEN 'pre' THEN 'purchase' ELSE p.kind END,
       CASE
         WHEN p.kind IN ('purchase', 'pre')
           THEN round(5 + 40 * p.b * (1 + 0.05 * (u.variant = 'b')::INT), 2)
         WHEN p.kind = 'page_load'
           THEN round(exp(5 + 0.4 * sqrt(-2 * ln(greatest(p.a, 1e-12))) * cos(2 * pi() * p.b)
                * (1 - 0.02 * (u.variant = 'c')::INT)), 3)
         ELSE NULL END,
       CASE p.kind
         WHEN 'pre' THEN u.exposed_at - to_microseconds(CAST(p.a * 14 * 86400e6 AS BIGINT))
         WHEN 'page_load' THEN u.exposed_at + to_microseconds(CAST(p.a * 2 * 86400e6 AS BIGINT))
         ELSE u.exposed_at + to_microseconds(CAST(p.a * 10 * 86400e6 AS BIGINT)) END,
       '{{}}', NULL, NULL, 'bench', now()
FROM bench_picks p JOIN bench_units u USING (i)
WHERE p.kind <> 'purchase' OR u.variant <> 'control' OR p.a < 0.97;
DROP TABLE bench_picks;
DROP TABLE bench_units;
"""

PER_UNIT = """
WITH u AS (
  SELECT x.unit_id, x.variant_key AS variant, epoch_us(x.exposed_at) AS exposed_us
  FROM exposures x ANTI JOIN exposure_conflicts c
    ON c.unit_id = x.unit_id AND c.experiment_key = '{key}'
  WHERE x.experiment_key = '{key}'
), j AS (
  SELECT u.unit_id, e.event_name, e.value, epoch_us(e.occurred_at) - u.exposed_us AS offset_us
  FROM events e JOIN u USING (unit_id)
  WHERE e.event_name IN ('purchase', 'session', 'page_load')
), e AS (
  SELECT unit_id,
    count(*) FILTER (WHERE event_name = 'purchase' AND offset_us >= 0
                      AND offset_us < {week}) AS orders,
    sum(value) FILTER (WHERE event_name = 'purchase' AND offset_us >= 0
                        AND offset_us < {week}) AS revenue,
    sum(value) FILTER (WHERE event_name = 'purchase' AND offset_us < 0
                        AND offset_us >= -2 * {week}) AS revenue_pre,
    count(*) FILTER (WHERE event_name = 'session' AND offset_us >= 0
                      AND offset_us < {week}) AS sessions,
    avg(value) FILTER (WHERE event_name = 'page_load' AND offset_us >= 0) AS latency
  FROM j GROUP BY unit_id
)
SELECT u.variant,
       (coalesce(e.orders, 0) > 0)::INT AS converted,
       coalesce(e.orders, 0) AS orders,
       coalesce(e.revenue, 0.0) AS revenue,
       coalesce(e.revenue_pre, 0.0) AS revenue_pre,
       coalesce(e.sessions, 0) AS sessions,
       e.latency
FROM u LEFT JOIN e USING (unit_id)
"""


def best_of(fn: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """(best, median, last result) of ``repeats`` timed runs; the runs' times are kept in
    :data:`RUNS` under the function's name, for the spread."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    RUNS[getattr(fn, "__name__", "run")] = times
    return min(times), statistics.median(times), result


RUNS: dict[str, list[float]] = {}


def spread(name: str) -> str:
    """Median and min–max of the runs timed under ``name``, in seconds."""
    times = RUNS[name]
    return (
        f"median {statistics.median(times):.3f} s (min {min(times):.3f}, max {max(times):.3f}, "
        f"{len(times)} runs)"
    )


def compare_peer_work(duck_path: Path, repeats: int) -> tuple[Snapshot, list[float]]:
    """Splitlab on exactly the peer's work (see the module docstring) and the 4-metric peer,
    run in turns (ours, peer, ours, peer, …) so that both meet the same machine noise; each
    side on a connection it opened once, as the peer's pipeline documents.  The runs' times go
    to :data:`RUNS` (``peer_work``, ``peer4``); returns our last snapshot and each pair's
    ratio peer ÷ ours."""
    definitions = {m.key: m for m in METRICS}
    plan = build_plan(ExperimentSpec.model_validate(PEER_SPEC), definitions)
    plan = dataclasses.replace(plan, daily=False)
    experiment = peer_experiment()
    warehouse = Warehouse.open(f"duckdb:///{duck_path}", read_only=True)
    con = duckdb.connect(str(duck_path), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    ours: list[float] = []
    theirs: list[float] = []
    snapshot: Snapshot | None = None
    try:
        for _ in range(repeats):
            started = time.perf_counter()
            snapshot = run_analysis(warehouse=warehouse, plan=plan, watermark=warehouse.watermark())
            ours.append(time.perf_counter() - started)
            started = time.perf_counter()
            data = con.execute(PER_UNIT.format(key=KEY, week=7 * 86_400_000_000)).df()
            experiment.analyze(data, control="control", all_variants=True)
            theirs.append(time.perf_counter() - started)
    finally:
        warehouse.close()
        con.close()
    RUNS["peer_work"], RUNS["peer4"] = ours, theirs
    assert snapshot is not None
    return snapshot, [t / o for o, t in zip(ours, theirs, strict=True)]


def make_store(home: Path, database_url: str) -> Settings:
    settings = Settings(
        home=home, database_url=database_url, secret_key="bench", analysis_refresh_seconds=0
    )
    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()
    actor = Principal(username="bench", role=Role.ADMIN)
    services = Services.open(settings)
    with services.sessions.begin() as session:
        for metric in METRICS:
            upsert_metric(session=session, definition=metric, actor=actor)
        create_experiment(session=session, spec=ExperimentSpec.model_validate(SPEC), actor=actor)
    services.close()
    return settings


def generate_duckdb(path: Path, units: int) -> float:
    Warehouse.open(f"duckdb:///{path}").close()  # the warehouse's own schema
    started = time.perf_counter()
    con = duckdb.connect(str(path))
    scale = units / 1_000_000
    con.execute(
        GENERATE.format(
            key=KEY,
            units=units,
            purchases=int(1_100_000 * scale),
            pre=int(400_000 * scale),
            sessions=int(2_500_000 * scale),
            loads=int(1_050_000 * scale),
        )
    )
    con.execute("CHECKPOINT")
    con.close()
    return time.perf_counter() - started


def copy_to_postgres(duck_path: Path, url: str, tmp: Path) -> None:
    import psycopg

    from splitlab.warehouse.postgres import conninfo
    from splitlab.warehouse.schema import EVENT_COLUMNS, EXPOSURE_COLUMNS

    Warehouse.open(url).close()
    con = duckdb.connect(str(duck_path), read_only=True)
    with psycopg.connect(conninfo(url), autocommit=True) as pg:
        for table, columns in (("exposures", EXPOSURE_COLUMNS), ("events", EVENT_COLUMNS)):
            csv = tmp / f"{table}.csv"
            con.execute(f"COPY {table} TO '{csv}' (FORMAT CSV, HEADER false)")
            with (
                pg.cursor() as cur,
                cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT CSV)") as copy,
                csv.open("rb") as handle,
            ):
                while chunk := handle.read(1 << 20):
                    copy.write(chunk)
            csv.unlink()
        pg.execute("ANALYZE")
    con.close()


def time_ours(settings: Settings, repeats: int) -> dict[str, Any]:
    def cold() -> Snapshot:
        services = Services.open(settings)
        try:
            return analyze(services=services, key=KEY, refresh=True)
        finally:
            services.close()

    cold_best, cold_median, snapshot = best_of(cold, repeats)
    services = Services.open(settings)
    analyze(services=services, key=KEY)  # open the warehouse connection once
    cached_best, cached_median, cached = best_of(
        lambda: analyze(services=services, key=KEY), max(repeats, 10)
    )

    def novelty_view() -> Snapshot:
        novelty.clear_cache()  # computed from the warehouse every time
        return exposure_day_view(services=services, snapshot=cached)

    _, novelty_median, viewed = best_of(novelty_view, repeats)
    services.close()
    assert cached.cached, "the second analysis must be a cache hit"
    assert viewed.exposure_days, "the novelty view must have points"
    return {
        "cold": (cold_best, cold_median),
        "cached": (cached_best, cached_median),
        "novelty": novelty_median,
        "snapshot": snapshot,
    }


def peer_experiment(n_resamples: int | None = None) -> Any:
    """tea-tasting's experiment of the same metrics: the four of the peer's work, and the p95
    latency ``Quantile`` (a bootstrap of ``n_resamples``) when that is given."""
    import tea_tasting as tt

    metrics: dict[str, Any] = {
        "converted": tt.Mean("converted"),
        "orders": tt.Mean("orders"),
        "revenue": tt.Mean("revenue", covariate="revenue_pre"),
        "revenue_per_session": tt.RatioOfMeans("revenue", "sessions"),
    }
    if n_resamples is not None:
        metrics["latency_p95"] = tt.Quantile("latency", q=0.95, n_resamples=n_resamples, rng=42)
    return tt.Experiment(**metrics)


def peer(duck_path: Path, repeats: int, n_resamples: int) -> tuple[float, float, float, Any]:
    """The 5-metric peer: (best, median, fastest per-unit table build, last result)."""
    experiment = peer_experiment(n_resamples)
    con = duckdb.connect(str(duck_path), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    build_times: list[float] = []

    def run() -> Any:
        started = time.perf_counter()
        data = con.execute(PER_UNIT.format(key=KEY, week=7 * 86_400_000_000)).df()
        build_times.append(time.perf_counter() - started)
        return experiment.analyze(data, control="control", all_variants=True)

    best, median, result = best_of(run, repeats)
    RUNS["peer"] = RUNS.pop("run")
    con.close()
    return best, median, min(build_times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100k units instead of 1M")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument(
        "--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    parser.add_argument(
        "--resamples",
        type=int,
        default=100,
        help="bootstrap resamples for tea-tasting's Quantile (its default is 10,000)",
    )
    args = parser.parse_args()
    units = 100_000 if args.quick else 1_000_000
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"Python {platform.python_version()} on {platform.machine()} ({os.cpu_count()} CPUs, "
        f"load average {load}), duckdb {duckdb.__version__}"
    )

    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        duck_path = tmp / "warehouse.duckdb"
        seconds = generate_duckdb(duck_path, units)
        check = duckdb.connect(str(duck_path), read_only=True)
        n_exp, n_ev = check.execute(
            "SELECT (SELECT count(*) FROM exposures), (SELECT count(*) FROM events)"
        ).fetchone() or (0, 0)
        check.close()
        print(
            f"data: {n_exp:,} exposed units, {n_ev:,} events, 3 variants, 28 days "
            f"(generated in {seconds:.1f} s)"
        )

        settings = make_store(tmp / "home", f"sqlite:///{tmp / 'app.db'}")
        settings = settings.model_copy(update={"warehouse_url": f"duckdb:///{duck_path}"})
        ours = time_ours(settings, args.repeats)
        snap = ours["snapshot"]
        reduction = {
            r.metric: round(r.variance_reduction or 0.0, 3)
            for r in snap.overall()
            if r.variant == "b" and r.covariates
        }
        print(
            f"splitlab DuckDB   full analysis from raw events (cold): {spread('cold')}  "
            f"[{len(snap.results)} results, {len(snap.daily)} daily, "
            f"{len(snap.heterogeneity)} heterogeneity tests, {len(snap.health)} health checks; "
            f"variance reduction (b) {reduction}; queries {snap.timings_ms}]"
        )
        print(
            f"splitlab DuckDB   cached snapshot: best {ours['cached'][0] * 1000:.1f} ms, "
            f"median {ours['cached'][1] * 1000:.1f} ms"
        )
        print(
            f"splitlab DuckDB   days-since-exposure view beside it, on demand (uncached; what "
            f"the first experiment page after an analysis adds): {spread('novelty_view')}"
        )

        if not args.no_postgres:
            from sqlalchemy import create_engine, text

            schema = f"bench_{uuid.uuid4().hex[:8]}"
            admin = create_engine(args.postgres_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.execute(text(f'CREATE SCHEMA "{schema}"'))
            try:
                pg_url = f"{args.postgres_url}?options=-csearch_path%3D{schema}"
                started = time.perf_counter()
                copy_to_postgres(duck_path, pg_url, tmp)
                print(f"(copied to PostgreSQL in {time.perf_counter() - started:.1f} s)")
                pg_settings = make_store(tmp / "home-pg", f"sqlite:///{tmp / 'app-pg.db'}")
                pg_settings = pg_settings.model_copy(update={"warehouse_url": pg_url})
                pg = time_ours(pg_settings, max(1, args.repeats - 1))
                print(
                    f"splitlab Postgres full analysis from raw events (cold): best "
                    f"{pg['cold'][0]:.3f} s, median {pg['cold'][1]:.3f} s; cached snapshot "
                    f"{pg['cached'][0] * 1000:.1f} ms"
                )
            finally:
                with admin.connect() as connection:
                    connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                admin.dispose()

        version = __import__("tea_tasting").__version__
        _, _, build, _ = peer(duck_path, args.repeats, args.resamples)
        print(
            f"peer: DuckDB per-unit table + tea-tasting {version} (5 metrics, no segments, no "
            f"days; Quantile = bootstrap, n_resamples={args.resamples}): {spread('peer')} "
            f"(of which per-unit table {build:.3f} s at best)"
        )
        lean, ratios = compare_peer_work(duck_path, max(args.repeats, 5))
        print(
            f"splitlab DuckDB   the peer's work (4 metrics, no segments, no days): "
            f"{spread('peer_work')}  [{len(lean.results)} results; queries {lean.timings_ms}]"
        )
        print(f"peer on the same work (4 metrics: its cheapest form), in turns: {spread('peer4')}")
        median4 = statistics.median(RUNS["peer4"])
        print(
            f"same work: peer / splitlab per pair, median {statistics.median(ratios):.2f}x "
            f"(min {min(ratios):.2f}, max {max(ratios):.2f}; target ≥ 1.5x); full splitlab "
            f"analysis (5 metrics, segments, crossed, covariates, days, health, stored, cold) / "
            f"4-metric peer = {ours['cold'][1] / median4:.2f}x"
        )
        print(f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
