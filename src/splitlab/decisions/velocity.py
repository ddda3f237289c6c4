"""Program velocity: each experiment's milestones from its transitions, and the headline
counts of a period — outcomes, median run time, time from stop to decision — that the fleet
view's velocity charts and the per-team velocity view (``/program/velocity``) share, so the
two pages can never disagree. Counts, durations and medians of the audit log's dates; no
statistics."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import median
from typing import Any, Protocol

from splitlab.store.fleet import Transition

TERMINAL = ("shipped", "killed", "rolled_back")


@dataclass(frozen=True)
class Dates:
    """An experiment's milestones, read from its transitions."""

    created: datetime | None
    started: datetime | None
    stopped: datetime | None
    decided: datetime | None
    ended: datetime | None
    """When it reached a terminal state."""


def milestones(moves: list[Transition], decided_at: datetime | None = None) -> Dates:
    """First start, first stop, first decision and end of one experiment (moves oldest first)."""
    created = started = stopped = decided = ended = None
    for move in moves:
        to = move.to_status
        if to == "draft" and move.from_status is None and created is None:
            created = move.at
        if to == "running" and started is None:
            started = move.at
        if started is not None and stopped is None and to in ("stopped", "rolled_back"):
            stopped = move.at
        if stopped is not None and decided is None and to in ("rolling_out", *TERMINAL):
            decided = move.at
        if to in TERMINAL and ended is None:
            ended = move.at
    if decided_at is not None and stopped is not None and decided_at >= stopped:
        decided = decided_at if decided is None else min(decided, decided_at)
    return Dates(created, started, stopped, decided, ended)


def outcome_kind(status: str, outcome: str) -> str:
    """The outcome (``positive``/``negative``/``neutral``: won, lost, inconclusive) once the
    experiment is decided, else ``unfinished``."""
    if status in (*TERMINAL, "rolling_out") and outcome != "in_progress":
        return outcome
    return "unfinished"


class Counted(Protocol):
    """What the counts read of one experiment: its key and its ``outcome_kind``."""

    @property
    def key(self) -> str: ...

    @property
    def kind(self) -> str: ...


def _days(delta: timedelta) -> float:
    return delta.total_seconds() / 86400


def kpis(
    rows: Iterable[Counted], dates: Mapping[str, Dates], *, start: datetime | None, end: datetime
) -> dict[str, Any]:
    """The headline numbers of one period: outcomes of the experiments that ran in it (as
    they stand now), median run time of those stopped in it, median days from stop to the
    first decision."""
    durations, waits = [], []
    counts = {"positive": 0, "negative": 0, "neutral": 0, "unfinished": 0}
    for row in rows:
        d = dates.get(row.key)
        if d is None or d.started is None or d.started >= end:
            continue
        if start is not None and (d.stopped or end) < start:
            continue
        counts[row.kind] += 1
        if d.stopped is not None and d.stopped < end and (start is None or d.stopped >= start):
            durations.append(_days(d.stopped - d.started))
            if d.decided is not None:
                waits.append(_days(d.decided - d.stopped))
    decided = counts["positive"] + counts["negative"] + counts["neutral"]
    return {
        "median_duration_days": round(median(durations), 1) if durations else None,
        "median_stop_to_decision_days": round(median(waits), 1) if waits else None,
        "won": counts["positive"],
        "lost": counts["negative"],
        "inconclusive": counts["neutral"],
        "unfinished": counts["unfinished"],
        "win_rate": round(counts["positive"] / decided, 3) if decided else None,
    }


def reached(
    rows: Iterable[Counted],
    dates: Mapping[str, Dates],
    start: datetime,
    end: datetime,
    *,
    milestone: str,
) -> int:
    """How many of ``rows`` reached ``milestone`` (``started``, ``stopped``) in [start, end)."""
    count = 0
    for row in rows:
        at = getattr(dates.get(row.key), milestone, None)
        if at is not None and start <= at < end:
            count += 1
    return count
