"""The fleet view's rows: a compact summary of each experiment's newest snapshot, the badge
naming its next action, and the URL filters and sorts over them.

Nothing here computes statistics: the numbers come from stored snapshots (effects, CIs,
adjusted p-values, power, days remaining) and stored recommendations; what is added is
reading them (is the interval clear of zero in the metric's good direction?) and ratios for
display (progress = control units ÷ units the plan needs).

A summary is built once per stored snapshot id and kept in process (a snapshot row never
changes), so a page over 500 experiments reads 500 ids, not 500 payloads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from splitlab.decisions.program import filter_query, primary_metric
from splitlab.decisions.recommendation import Code, Recommendation
from splitlab.decisions.velocity import outcome_kind
from splitlab.store.fleet import FleetExperiment

ACTIVE = ("review", "scheduled", "running", "stopped", "readout", "rolling_out")
ENDED = ("stopped", "readout", "rolling_out", "shipped", "killed", "rolled_back")
IN_PROGRESS = ("draft", "review", "scheduled", "running")
STATUSES = ("draft", *ACTIVE, "shipped", "killed", "rolled_back")
RANGES = {"7d": 7, "30d": 30, "90d": 90, "all": None}
SIGNIFICANCE = ("significant", "not_significant", "insufficient")
OUTCOMES = ("positive", "negative", "neutral", "in_progress")


# ---------------------------------------------------------------- snapshot summaries


@dataclass(frozen=True)
class PrimaryRow:
    """One treatment's overall result on the primary metric."""

    variant: str
    rel_effect: float | None
    rel_ci_low: float | None
    rel_ci_high: float | None
    p_value: float | None
    """The corrected p-value when the snapshot has one, else the raw one."""
    chance_to_win: float | None
    power: float | None
    days_remaining: int | None
    n_required: float | None
    control_n: float | None


@dataclass(frozen=True)
class Summary:
    """What a card needs of one snapshot."""

    snapshot_id: int
    created_at: str
    engine: str
    alpha: float
    metric: str | None
    metric_name: str
    lower_is_better: bool
    rows: tuple[PrimaryRow, ...]
    warnings: tuple[tuple[str, str], ...]
    """(severity, message) of every health check that did not pass, critical first."""
    units: int
    days: int


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def summarize_payload(snapshot_id: int, payload: dict[str, Any]) -> Summary:
    """The card's numbers from one stored snapshot payload (the JSON form of
    ``analysis.snapshot.Snapshot``)."""
    settings = payload.get("settings") or {}
    metric_key, metric_name, lower = primary_metric(settings)
    rows = []
    for row in payload.get("results") or []:
        if row.get("segment") is not None or row.get("metric") != metric_key:
            continue
        p_adjusted = _number(row.get("p_value_adjusted"))
        days = row.get("days_remaining")
        rows.append(
            PrimaryRow(
                variant=str(row.get("variant")),
                rel_effect=_number(row.get("rel_effect")),
                rel_ci_low=_number(row.get("credible_low", row.get("rel_ci_low"))),
                rel_ci_high=_number(row.get("credible_high", row.get("rel_ci_high"))),
                p_value=p_adjusted if p_adjusted is not None else _number(row.get("p_value")),
                chance_to_win=_number(row.get("chance_to_win")),
                power=_number(row.get("power")),
                days_remaining=days if isinstance(days, int) else None,
                n_required=_number(row.get("n_required")),
                control_n=_number(row.get("control_n")),
            )
        )
    order = {"critical": 0, "warning": 1}
    warnings = sorted(
        (
            (str(c.get("severity")), str(c.get("message", "")))
            for c in payload.get("health") or []
            if c.get("severity") in order
        ),
        key=lambda pair: order[pair[0]],
    )
    return Summary(
        snapshot_id=snapshot_id,
        created_at=str(payload.get("created_at", "")),
        engine=str(payload.get("engine", "")),
        alpha=_number(settings.get("alpha")) or 0.05,
        metric=metric_key,
        metric_name=metric_name,
        lower_is_better=lower,
        rows=tuple(rows),
        warnings=tuple(warnings),
        units=sum(int(u.get("n") or 0) for u in payload.get("units") or []),
        days=len(payload.get("days") or []),
    )


class SummaryCache:
    """Summaries by app store and stored snapshot id (immutable rows, so never stale), least
    recently used first out. The store's name keeps two databases in one process (tests, a
    benchmark) from reading each other's ids."""

    def __init__(self, size: int = 5000) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, int], Summary] = OrderedDict()
        self._lock = threading.Lock()

    def get_many(self, store: str, ids: list[int]) -> tuple[dict[int, Summary], list[int]]:
        """The cached summaries among ``ids`` of app store ``store`` and the ids missing."""
        found: dict[int, Summary] = {}
        missing = []
        with self._lock:
            for snapshot_id in ids:
                summary = self._items.get((store, snapshot_id))
                if summary is None:
                    missing.append(snapshot_id)
                else:
                    self._items.move_to_end((store, snapshot_id))
                    found[snapshot_id] = summary
        return found, missing

    def put(self, store: str, summary: Summary) -> None:
        """Keep one summary of app store ``store``."""
        key = (store, summary.snapshot_id)
        with self._lock:
            self._items[key] = summary
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        """Forget every summary."""
        with self._lock:
            self._items.clear()


SUMMARIES = SummaryCache()


# ---------------------------------------------------------------- rows


@dataclass(frozen=True)
class Badge:
    """The next action, in words, with its tone and whether someone must act now."""

    label: str
    tone: str
    """``good``, ``bad``, ``info`` or ``neutral`` (a CSS class)."""
    act: bool


@dataclass
class FleetRow:
    """One experiment as the fleet view shows it."""

    experiment: FleetExperiment
    summary: Summary | None
    recommendation: Recommendation | None
    primary: PrimaryRow | None
    significance: str
    """``significant``, ``not_significant`` or ``insufficient``."""
    direction: str | None
    """``good`` or ``bad`` when significant, else None."""
    outcome: str
    """``positive``, ``negative``, ``neutral`` or ``in_progress``."""
    progress: float | None
    """Control units ÷ control units the plan's MDE needs (or, without an MDE, days run ÷
    the plan's ``max_days``), capped at 1."""
    progress_basis: str
    """``sample``, ``duration`` or ``""`` (no target fixed in advance)."""
    days_left: int | None
    badge: Badge
    ended_at: datetime | None = None
    started_at: datetime | None = None
    rollout: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.experiment.key

    @property
    def lift(self) -> float | None:
        return self.primary.rel_effect if self.primary else None

    @property
    def kind(self) -> str:
        """The outcome once decided, else ``unfinished`` (``decisions.velocity``)."""
        return outcome_kind(self.experiment.status, self.outcome)

    @property
    def good_lift(self) -> float | None:
        """The lift signed so that larger is better (flipped for lower-is-better metrics)."""
        if self.lift is None:
            return None
        return -self.lift if self.summary and self.summary.lower_is_better else self.lift


def _pick_primary(summary: Summary | None, rec: Recommendation | None) -> PrimaryRow | None:
    if summary is None or not summary.rows:
        return None
    if rec is not None and rec.variant:
        for row in summary.rows:
            if row.variant == rec.variant:
                return row
    # A/B/n without a named variant: the treatment with the smallest p-value (then largest
    # effect in the good direction)
    sign = -1.0 if summary.lower_is_better else 1.0

    def order(row: PrimaryRow) -> tuple[float, float]:
        p = row.p_value if row.p_value is not None else 2.0
        return (p, -(sign * (row.rel_effect or 0.0)))

    return min(summary.rows, key=order)


def _significance(summary: Summary | None, row: PrimaryRow | None) -> tuple[str, str | None]:
    if summary is None or row is None or row.rel_effect is None:
        return "insufficient", None
    low, high = row.rel_ci_low, row.rel_ci_high
    if summary.engine == "bayesian":
        clear = low is not None and high is not None and (low > 0 or high < 0)
    else:
        clear = row.p_value is not None and row.p_value < summary.alpha
    if not clear:
        if row.p_value is None and row.chance_to_win is None:
            return "insufficient", None
        return "not_significant", None
    up = row.rel_effect > 0
    good = up != summary.lower_is_better
    return "significant", "good" if good else "bad"


_ACT_BAD = {
    Code.INVESTIGATE_INVALID_EXPERIMENT: "unhealthy",
    Code.ROLLBACK: "roll back",
    Code.KILL: "roll back",
    Code.HOLD_GUARDRAIL_RISK: "guardrail risk",
}


def badge_for(
    status: str,
    *,
    rec: Recommendation | None,
    outcome: str,
    days_left: int | None,
    critical: bool,
    rollout: float | None,
) -> Badge:
    """The one badge naming what to do next with this experiment."""
    if status == "draft":
        return Badge("draft", "neutral", False)
    if status == "review":
        return Badge("needs review", "info", True)
    if status == "scheduled":
        return Badge("scheduled", "info", False)
    code = rec.code if rec is not None else None
    if status in ("running", "stopped", "readout"):
        if code in (Code.SHIP_GLOBAL, Code.SHIP_TARGETED_SEGMENTS):
            return Badge("ship now", "good", True)
        if code in _ACT_BAD:
            if status != "running" and code in (Code.ROLLBACK, Code.KILL):
                return Badge("lost", "bad", True)
            return Badge(_ACT_BAD[code], "bad", True)
        if code is None and critical:
            return Badge("unhealthy", "bad", True)
        if code == Code.HOLD_INCONCLUSIVE:
            return Badge("inconclusive", "neutral", True)
        if status == "running":
            left = f" — {days_left} days left" if days_left is not None else ""
            if days_left == 1:
                left = " — 1 day left"
            return Badge(f"running{left}", "info", False)
        return Badge("needs decision", "neutral", True)
    if status == "rolling_out":
        share = f" {rollout:g}%" if rollout is not None else ""
        return Badge(f"rolling out{share}", "good", False)
    if status == "rolled_back" and outcome == "neutral":
        return Badge("rolled back", "bad", False)
    labels = {"positive": ("won", "good"), "negative": ("lost", "bad")}
    label, tone = labels.get(outcome, ("inconclusive", "neutral"))
    return Badge(label, tone, False)


def outcome_of(status: str, direction: str | None) -> str:
    """``in_progress`` until the run ends; then the primary metric's verdict, except that an
    experiment killed or rolled back despite a significant win counts as a loss (it did not
    ship: a guardrail or the team judged it harmful)."""
    if status in IN_PROGRESS:
        return "in_progress"
    if direction == "bad" or (direction == "good" and status in ("killed", "rolled_back")):
        return "negative"
    return "positive" if direction == "good" else "neutral"


def build_row(
    experiment: FleetExperiment,
    *,
    summary: Summary | None,
    rec: Recommendation | None,
    now: datetime,
    started_at: datetime | None = None,
    ended_at: datetime | None = None,
    rollout: float | None = None,
) -> FleetRow:
    """One fleet row from an experiment, its snapshot summary and its recommendation."""
    primary = _pick_primary(summary, rec)
    significance, direction = _significance(summary, primary)
    status = experiment.status
    outcome = outcome_of(status, direction)
    progress, basis = None, ""
    if primary and primary.n_required and primary.control_n is not None:
        progress, basis = min(1.0, primary.control_n / primary.n_required), "sample"
    # days left only mean something while it runs
    days_left = primary.days_remaining if primary and status == "running" else None
    max_days = experiment.plan.get("max_days")
    start = started_at or experiment.start_at
    if status == "running" and isinstance(max_days, int) and max_days > 0 and start is not None:
        elapsed = max(0.0, (now - start).total_seconds() / 86400)
        if progress is None:  # no MDE, so no planned sample: the planned duration instead
            progress, basis = min(1.0, elapsed / max_days), "duration"
        if days_left is None:
            days_left = max(0, max_days - int(elapsed))
    critical = bool(summary and any(s == "critical" for s, _ in summary.warnings))
    badge = badge_for(
        status,
        rec=rec,
        outcome=outcome,
        days_left=days_left,
        critical=critical,
        rollout=rollout,
    )
    return FleetRow(
        experiment=experiment,
        summary=summary,
        recommendation=rec,
        primary=primary,
        significance=significance,
        direction=direction,
        outcome=outcome,
        progress=progress,
        progress_basis=basis,
        days_left=days_left,
        badge=badge,
        started_at=started_at,
        ended_at=ended_at,
        rollout=rollout,
    )


# ---------------------------------------------------------------- filters and sorts


@dataclass(frozen=True)
class Filters:
    """The fleet view's filters as read from (and written back to) the URL."""

    range: str = "30d"
    team: str = ""
    status: str = "active"
    type: str = ""
    significance: str = ""
    outcome: str = ""
    q: str = ""
    sort: str = "-updated"
    lsort: str = "-goodlift"

    def query(self, **override: str) -> str:
        """This view's query string with some values replaced (defaults left out)."""
        return filter_query(self, **override)

    def since(self, now: datetime) -> datetime | None:
        days = RANGES[self.range]
        return None if days is None else now - timedelta(days=days)


def matches(row: FleetRow, filters: Filters, now: datetime) -> bool:
    """Whether a row passes every filter."""
    e = row.experiment
    if filters.status == "active":
        if e.status not in ACTIVE:
            return False
    elif filters.status != "all" and e.status != filters.status:
        return False
    if filters.team and e.team != filters.team:
        return False
    if filters.type and e.type != filters.type:
        return False
    if filters.significance and row.significance != filters.significance:
        return False
    if filters.outcome and row.outcome != filters.outcome:
        return False
    if filters.q:
        text = filters.q.lower()
        if not any(text in value.lower() for value in (e.key, e.name, e.hypothesis, e.team)):
            return False
    since = filters.since(now)
    if since is not None:
        ended = row.ended_at
        if ended is not None and ended < since and e.status not in ACTIVE:
            return False
        if ended is None and e.status not in ACTIVE and e.updated_at < since:
            return False
    return True


def _none_last(value: Any, descending: bool) -> tuple[int, Any]:
    if value is None:
        return (1, 0)
    return (0, -value if descending and isinstance(value, int | float) else value)


SORTS: dict[str, Any] = {
    "key": lambda r: r.experiment.key,
    "name": lambda r: (r.experiment.name or r.experiment.key).lower(),
    "team": lambda r: r.experiment.team,
    "type": lambda r: r.experiment.type,
    "status": lambda r: (
        STATUSES.index(r.experiment.status) if r.experiment.status in STATUSES else 99
    ),
    "lift": lambda r: r.lift,
    "goodlift": lambda r: r.good_lift,
    "progress": lambda r: r.progress,
    "days": lambda r: r.days_left,
    "started": lambda r: r.started_at.timestamp() if r.started_at else None,
    "updated": lambda r: r.experiment.updated_at.timestamp(),
}
"""Sort keys for ``?sort=`` (``-`` in front for descending); rows without a value last."""


def sort_rows(rows: list[FleetRow], sort: str) -> list[FleetRow]:
    """Rows in the order ``sort`` names (unknown names fall back to newest update first)."""
    descending = sort.startswith("-")
    name = sort.lstrip("-")
    key = SORTS.get(name)
    if key is None:
        return sort_rows(rows, "-updated")
    ordered = sorted(rows, key=lambda r: r.experiment.key)  # ties in a stable, readable order
    if name in ("key", "name", "team", "type"):
        return sorted(ordered, key=key, reverse=descending)
    return sorted(ordered, key=lambda r: _none_last(key(r), descending))
