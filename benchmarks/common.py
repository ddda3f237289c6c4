"""What the benchmarks share (imported by them; not a benchmark itself): a throwaway app store
made current and opened, and how a list of timings is summarised and printed."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from splitlab.config import Settings
from splitlab.services import Services
from splitlab.store.db import make_engine
from splitlab.store.migrate import upgrade


def server_settings(home: Path, database_url: str | None, **options: Any) -> Settings:
    """A served app in ``home`` (auth off, no scheduler): SQLite there, or ``database_url``
    for both the app store and the warehouse (PostgreSQL)."""
    return Settings(
        home=home / "home",
        database_url=database_url or f"sqlite:///{home / 'app.db'}",
        warehouse_url=database_url,
        secret_key="bench",
        auth="off",
        scheduler_seconds=0,
        **options,
    )


def open_services(settings: Settings) -> Services:
    """The app store migrated to the newest schema, then the services opened on it."""
    engine = make_engine(settings.resolved_database_url())
    upgrade(engine)
    engine.dispose()
    return Services.open(settings)


def spread(samples: list[float]) -> dict[str, float]:
    """Median, min, p90 (nearest rank) and max of some timings."""
    ordered = sorted(samples)
    return {
        "median": statistics.median(ordered),
        "min": ordered[0],
        "p90": ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))],
        "max": ordered[-1],
    }


def line(
    name: str,
    samples: list[float],
    target: float | None = None,
    *,
    width: int = 34,
    p90: bool = True,
) -> str:
    """One printed figure in ms: median, min, (p90,) max, the count, and against ``target``
    (ms, on the median) OK or OVER."""
    s = spread(samples)
    verdict = ""
    if target is not None:
        verdict = "  OK" if s["median"] <= target else f"  OVER the {target:.0f} ms target"
    tail = f"p90 {s['p90']:7.1f}   " if p90 else ""
    return (
        f"  {name:<{width}} median {s['median']:7.1f} ms   min {s['min']:7.1f}   "
        f"{tail}max {s['max']:7.1f}   (n={len(samples)}){verdict}"
    )


def timed_ms(
    call: Callable[[], Any], repeats: int, *, before: Callable[[], Any] | None = None
) -> list[float]:
    """Milliseconds of each of ``repeats`` calls (``before`` runs untimed ahead of each); a
    call that returns an HTTP response must answer 200."""
    out = []
    for _ in range(repeats):
        if before is not None:
            before()
        started = time.perf_counter()
        result = call()
        out.append((time.perf_counter() - started) * 1000.0)
        status = getattr(result, "status_code", 200)
        assert status == 200, getattr(result, "text", "")[:300]
    return out
