"""The programme views for product managers, engineering managers and finance: what every
decided experiment cost and returned, how well the team predicted its outcomes, and what the
shipped changes added up to once the winner's curse is taken out.

Everything is read from stored rows — experiments, their newest snapshot, the stored
recommendation, the applied decision, notes and the audit log — never from an analysis or an
engine run. A snapshot's primary-metric result is extracted once per snapshot id and kept in
process (stored snapshots never change), so a view over 1,000 decided experiments reads ids
and small rows, not 1,000 payloads.

Definitions (the pages and ``docs`` say the same):

* **Decided**: the experiment is rolling out, shipped, killed or rolled back.
* **Verdict** on the primary metric, for the treatment decided on (the applied decision's
  variant, else the recommendation's, else the treatment with the smallest p-value): *won*
  when significant in the metric's good direction (corrected p-value below α; for Bayesian
  plans the credible interval clear of zero), *lost* when significant the other way,
  *inconclusive* otherwise, *no result* without an estimate.
* **Lift** is the relative effect, signed so that larger is better (flipped for
  lower-is-better metrics); its standard error is the interval's half-width ÷ z₁₋α/₂.
* **Confidence** (the cost-benefit bubble): 1 − p (the corrected p-value), or for Bayesian
  plans the chance that the decided treatment is better.
* **Forecast** (the hypothesis tracker): ``predicted_probability``, the team's stated chance,
  fixed before the start, that the primary metric *wins*; scored with the Brier score.
* **Impact**: James–Stein shrinkage (``stats.shrinkage``) of every decided experiment's lift
  toward their grand mean, summed over the shipped ones, beside the raw sum.
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from scipy import special

from splitlab.errors import ValidationError
from splitlab.store import program as store
from splitlab.store.recommendations import latest_recommendations, latest_snapshot_texts

if TYPE_CHECKING:
    from splitlab.services import Services

VIEWS = ("impact", "tracker", "cost-benefit")
RANGES: dict[str, int | None] = {"90d": 90, "180d": 180, "365d": 365, "all": None}
PERIODS = ("month", "quarter")
BENEFITS = ("lift", "value")
SHIPPED = ("rolling_out", "shipped")
VERDICTS = ("won", "lost", "inconclusive", "no_result")
MAX_TEXT = 100
LEVEL = 0.95


# ---------------------------------------------------------------- filters


def filter_query(filters: Any, **override: str) -> str:
    """The query string of a view's filters (a dataclass whose every field has a default) with
    some values replaced; the values equal to their defaults are left out of the URL."""
    values = {name: getattr(filters, name) for name in filters.__dataclass_fields__} | override
    defaults = type(filters)()
    return urlencode({k: v for k, v in values.items() if v != getattr(defaults, k, None)})


@dataclass(frozen=True)
class ProgramFilters:
    """The program views' filters, as read from (and written back to) the URL."""

    team: str = ""
    type: str = ""
    range: str = "all"
    """Decided within the last 90, 180 or 365 days, or ``all``."""
    period: str = "quarter"
    """The tracker's calibration over time: per ``month`` or ``quarter``."""
    benefit: str = "lift"
    """The cost-benefit chart's benefit: primary ``lift`` or business ``value`` per day."""

    def query(self, **override: str) -> str:
        """The query string of these filters with some replaced (defaults left out)."""
        return filter_query(self, **override)

    def since(self, now: datetime) -> datetime | None:
        """The start of the selected range (None for all time)."""
        days = RANGES[self.range]
        return None if days is None else now - timedelta(days=days)


def parse_filters(params: Mapping[str, str]) -> ProgramFilters:
    """The filters in ``params`` (a query string's values), each checked: a
    ``ValidationError`` (422) names every bad one; names the views do not use are ignored."""
    problems: list[dict[str, Any]] = []

    def pick(name: str, allowed: tuple[str, ...], default: str) -> str:
        value = params.get(name, default)
        if value not in allowed:
            problems.append({"loc": ["query", name], "msg": f"one of {', '.join(allowed)}"})
            return default
        return value

    def text(name: str) -> str:
        value = params.get(name, "")
        if len(value) > MAX_TEXT or any(ord(c) < 32 or ord(c) == 127 for c in value):
            problems.append(
                {"loc": ["query", name], "msg": f"at most {MAX_TEXT} printable characters"}
            )
            return ""
        return value.strip()

    filters = ProgramFilters(
        team=text("team"),
        type=text("type"),
        range=pick("range", tuple(RANGES), "all"),
        period=pick("period", PERIODS, "quarter"),
        benefit=pick("benefit", BENEFITS, "lift"),
    )
    if problems:
        raise ValidationError("the program view's filters are not valid", details=problems)
    return filters


# ---------------------------------------------------------------- primary results


@dataclass(frozen=True)
class Arm:
    """One treatment's overall result on the primary metric, as the snapshot stored it."""

    variant: str
    rel_effect: float | None
    low: float | None
    high: float | None
    p_value: float | None
    """The corrected p-value when the snapshot has one, else the raw one."""
    chance_to_win: float | None


@dataclass(frozen=True)
class PrimaryResult:
    """What the program views need of one snapshot."""

    metric: str | None
    metric_name: str
    lower_is_better: bool
    engine: str
    alpha: float
    arms: tuple[Arm, ...]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def primary_metric(settings: Mapping[str, Any]) -> tuple[str | None, str, bool]:
    """The primary metric of a stored snapshot's settings: its key, its name (the key when
    it has none) and whether lower is better; ``(None, "", False)`` without one."""
    for entry in settings.get("metrics") or []:
        if entry.get("role") == "primary":
            definition = entry.get("definition") or {}
            metric = definition.get("key")
            return (
                metric,
                definition.get("name") or metric or "",
                (definition.get("direction") == "decrease"),
            )
    return None, "", False


def primary_result(payload: Mapping[str, Any]) -> PrimaryResult:
    """The primary metric's overall rows of one stored snapshot payload."""
    settings = payload.get("settings") or {}
    metric, name, lower = primary_metric(settings)
    arms = []
    for row in payload.get("results") or []:
        if row.get("segment") is not None or row.get("metric") != metric:
            continue
        adjusted = _number(row.get("p_value_adjusted"))
        arms.append(
            Arm(
                variant=str(row.get("variant")),
                rel_effect=_number(row.get("rel_effect")),
                low=_number(row.get("credible_low", row.get("rel_ci_low"))),
                high=_number(row.get("credible_high", row.get("rel_ci_high"))),
                p_value=adjusted if adjusted is not None else _number(row.get("p_value")),
                chance_to_win=_number(row.get("chance_to_win")),
            )
        )
    return PrimaryResult(
        metric=metric,
        metric_name=name,
        lower_is_better=lower,
        engine=str(payload.get("engine", "")),
        alpha=_number(settings.get("alpha")) or 0.05,
        arms=tuple(arms),
    )


class ResultCache:
    """Primary results by app store and stored snapshot id (snapshot rows never change), least
    recently used first out."""

    def __init__(self, size: int = 5000) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, int], PrimaryResult] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, services: Services, newest: Mapping[str, int]) -> dict[str, PrimaryResult]:
        """The primary results of the experiments in ``newest`` (key → newest snapshot id), by
        key; the payloads not held yet are read without their daily series (the database
        drops it: half of a snapshot) — a snapshot stored since counts under its own id."""
        store_name = str(services.settings.resolved_database_url())
        found: dict[str, PrimaryResult] = {}
        missing = []
        with self._lock:
            for key, snapshot_id in newest.items():
                result = self._items.get((store_name, snapshot_id))
                if result is None:
                    missing.append(key)
                else:
                    self._items.move_to_end((store_name, snapshot_id))
                    found[key] = result
        if missing:
            with services.sessions() as session:
                texts = latest_snapshot_texts(session=session, keys=missing)
            with self._lock:
                for key, (snapshot_id, text) in texts.items():
                    result = primary_result(json.loads(text))
                    found[key] = self._items[(store_name, snapshot_id)] = result
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
        return found

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


RESULTS = ResultCache()


# ---------------------------------------------------------------- items


@dataclass
class ProgramItem:
    """One decided experiment with everything the three views read."""

    key: str
    name: str
    team: str
    type: str
    status: str
    hypothesis: str
    predicted_outcome: str
    predicted_probability: float | None
    costs: dict[str, Any] | None
    started: datetime | None
    stopped: datetime | None
    decided: datetime | None
    metric: str | None = None
    metric_name: str = ""
    lower_is_better: bool = False
    variant: str | None = None
    lift: float | None = None
    """The relative effect, as measured (not flipped)."""
    good_lift: float | None = None
    good_low: float | None = None
    good_high: float | None = None
    se: float | None = None
    p_value: float | None = None
    confidence: float | None = None
    verdict: str = "no_result"
    """``won``, ``lost``, ``inconclusive`` or ``no_result``."""
    recommendation: str | None = None
    value: dict[str, Any] | None = None
    """The recommendation's business value of the decided treatment (per day, with its CI)."""
    decision: store.AppliedDecision | None = None
    notes: list[store.Note] = field(default_factory=list)

    @property
    def shipped(self) -> bool:
        return self.status in SHIPPED

    @property
    def run_days(self) -> float | None:
        end = self.stopped or self.decided
        if self.started is None or end is None:
            return None
        return max(0.0, (end - self.started).total_seconds() / 86400)


def _choose(result: PrimaryResult, wanted: list[str | None]) -> Arm | None:
    by_variant = {arm.variant: arm for arm in result.arms}
    for variant in wanted:
        if variant is not None and variant in by_variant:
            return by_variant[variant]
    sign = -1.0 if result.lower_is_better else 1.0
    usable = [arm for arm in result.arms if arm.rel_effect is not None]
    if not usable:
        return None
    return min(
        usable,
        key=lambda a: (a.p_value if a.p_value is not None else 2.0, -sign * (a.rel_effect or 0)),
    )


def _measure(item: ProgramItem, result: PrimaryResult, arm: Arm) -> None:
    """Fill the item's lift, interval, SE, confidence and verdict from ``arm``."""
    item.variant = arm.variant
    item.metric, item.metric_name = result.metric, result.metric_name
    item.lower_is_better = result.lower_is_better
    item.p_value = arm.p_value
    if arm.rel_effect is None:
        return
    sign = -1.0 if result.lower_is_better else 1.0
    item.lift = arm.rel_effect
    item.good_lift = sign * arm.rel_effect
    if arm.low is not None and arm.high is not None:
        ends = sorted((sign * arm.low, sign * arm.high))
        item.good_low, item.good_high = ends
        z = float(special.ndtri(1 - result.alpha / 2))
        half = (arm.high - arm.low) / 2
        item.se = half / z if half > 0 else None
    bayesian = result.engine == "bayesian"
    if bayesian:
        clear = item.good_low is not None and (
            item.good_low > 0 or (item.good_high is not None and item.good_high < 0)
        )
        win = arm.chance_to_win
        if win is not None:
            item.confidence = win if item.good_lift >= 0 else 1 - win
    else:
        clear = arm.p_value is not None and arm.p_value < result.alpha
        if arm.p_value is not None:
            item.confidence = 1 - arm.p_value
    if not clear:
        item.verdict = "inconclusive"
    else:
        item.verdict = "won" if item.good_lift > 0 else "lost"


def _recommendation(payload: Mapping[str, Any], variant: str | None) -> dict[str, Any] | None:
    for value in payload.get("value") or []:
        if isinstance(value, dict) and value.get("variant") == variant:
            return {k: value.get(k) for k in ("per_day", "ci_low", "ci_high", "currency")}
    return None


def load_items(*, services: Services, filters: ProgramFilters, now: datetime) -> list[ProgramItem]:
    """Every decided experiment that passes ``filters``, with its measured result."""
    with services.sessions() as session:
        experiments = [
            e
            for e in store.program_experiments(session=session)
            if (not filters.team or e.team == filters.team)
            and (not filters.type or e.type == filters.type)
        ]
        keys = [e.key for e in experiments]
        dates = store.milestones(session=session, keys=keys)
        decided = store.applied_decisions(session=session, keys=keys)
        notes = store.notes(session=session, keys=keys)
        recs = {
            key: (row.code, row.payload)
            for key, row in latest_recommendations(session=session, keys=keys).items()
        }
    since = filters.since(now)
    results = RESULTS.read(
        services, {e.key: e.snapshot_id for e in experiments if e.snapshot_id is not None}
    )
    items = []
    for e in experiments:
        when = dates.get(e.key, store.Milestones(None, None, None))
        if since is not None and (when.decided is None or when.decided < since):
            continue
        item = ProgramItem(
            key=e.key,
            name=e.name,
            team=e.team,
            type=e.type,
            status=e.status,
            hypothesis=e.hypothesis,
            predicted_outcome=e.predicted_outcome,
            predicted_probability=e.predicted_probability,
            costs=e.costs,
            started=when.started,
            stopped=when.stopped,
            decided=when.decided,
            decision=decided.get(e.key),
            notes=notes.get(e.key, []),
        )
        code, payload = recs.get(e.key, (None, {}))
        item.recommendation = code
        result = results.get(e.key)
        if result is not None:
            wanted = [item.decision.variant if item.decision else None, payload.get("variant")]
            arm = _choose(result, wanted)
            if arm is not None:
                _measure(item, result, arm)
                item.value = _recommendation(payload, arm.variant)
        items.append(item)
    items.sort(key=lambda i: (i.decided.timestamp() if i.decided else 0.0, i.key))
    return items


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def rounded(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


def item_json(item: ProgramItem) -> dict[str, Any]:
    """The fields every view shares for one experiment."""
    return {
        "key": item.key,
        "name": item.name,
        "team": item.team,
        "type": item.type,
        "status": item.status,
        "decided_at": _iso(item.decided),
        "metric": item.metric,
        "metric_name": item.metric_name,
        "lower_is_better": item.lower_is_better,
        "variant": item.variant,
        "lift": rounded(item.good_lift),
        "ci_low": rounded(item.good_low),
        "ci_high": rounded(item.good_high),
        "se": rounded(item.se),
        "p_value": item.p_value,
        "confidence": rounded(item.confidence),
        "verdict": item.verdict,
        "recommendation": item.recommendation,
    }
