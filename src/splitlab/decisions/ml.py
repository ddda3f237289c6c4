"""Quality, cost and performance overlays for model, prompt, infrastructure and cost
experiments, read from a stored snapshot and the variants' payloads.

Which metric plays which part is read from the metric's key and name (overridable by the
caller, e.g. from the page's URL):

* **quality** — a metric whose key or name mentions quality, accuracy, rating or relevance;
  failing that the primary metric, unless it is itself a cost, latency or error metric;
* **cost** — a variant payload's ``cost_per_request`` (a known price: exact, no interval),
  else a metric mentioning cost, price or spend (an arm mean with the comparison's CI);
* **latency** — metrics mentioning latency, response time or duration; quantile metrics are
  labelled by their quantile (p95, p99) — the mean comes from a mean or ratio metric;
* **throughput** — metrics mentioning throughput, QPS, RPS or requests per;
* **errors** — metrics mentioning error or failure.

Every number is the snapshot's own (arm means, effects, CIs, p-values, the plan's correction);
nothing is re-estimated here.  Cost arithmetic (:func:`cost_figures`):

* savings per request = c₀ − c₁; savings % = (c₀ − c₁) / c₀; per million requests × 10⁶;
* efficiency gain % = (q₁/c₁) / (q₀/c₀) − 1 — quality per unit of cost against control;
* ROI % = (value of the quality change + cost saved) / c₁ per request, where the value of
  the quality change is Δq × ``value_per_quality_unit`` (from the variant's or the control's
  payload, or given by the caller); without such a value only the cost saved counts
  (``roi_basis`` says which).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from splitlab.analysis.snapshot import ResultRow, Snapshot

ML_TYPES = ("model_comparison", "prompt", "infrastructure", "cost_optimization")
"""Experiment types the overlays and the leaderboard are about."""

COST_FIELD = "cost_per_request"
"""Variant payload field: the price of one request in that configuration (a number)."""
VALUE_FIELD = "value_per_quality_unit"
"""Payload field: what one unit of the quality metric is worth per request (for ROI)."""
NUMERIC_FIELDS = (COST_FIELD, VALUE_FIELD)
"""Payload fields that are prices, not part of a configuration's identity."""

_WORDS = {
    "quality": re.compile(r"quality|accuracy|rating|relevance|satisf", re.I),
    "cost": re.compile(r"cost|price|spend|\busd\b|dollar", re.I),
    "latency": re.compile(r"latency|response.?time|duration|\bttfb\b|_ms\b|\(ms\)", re.I),
    "throughput": re.compile(r"throughput|\bqps\b|\brps\b|requests.per|tokens.per.second", re.I),
    "errors": re.compile(r"error|failure|\bfail", re.I),
}


@dataclass(frozen=True)
class MetricDef:
    """A metric as the snapshot's settings describe it."""

    key: str
    name: str
    role: str
    kind: str
    quantile: float | None
    higher_is_better: bool

    @property
    def label(self) -> str:
        """The name, with its quantile (``p95``) for quantile metrics."""
        if self.kind == "quantile" and self.quantile is not None:
            tag = f"p{round(self.quantile * 100):d}"
            return self.name if tag in self.name.lower() else f"{self.name} ({tag})"
        return self.name


def metric_defs(snapshot: Snapshot) -> dict[str, MetricDef]:
    """The snapshot's metrics in plan order, keyed by metric key."""
    out: dict[str, MetricDef] = {}
    for entry in snapshot.settings.get("metrics", []):
        d = entry.get("definition", {})
        key = str(d.get("key", ""))
        out[key] = MetricDef(
            key=key,
            name=str(d.get("name") or key),
            role=str(entry.get("role", "secondary")),
            kind=str(d.get("kind", "")),
            quantile=d.get("quantile"),
            higher_is_better=d.get("direction", "increase") != "decrease",
        )
    return out


@dataclass(frozen=True)
class Roles:
    """Which metrics play which part (keys, in plan order)."""

    quality: str | None
    cost: str | None
    latency: tuple[str, ...]
    throughput: tuple[str, ...]
    errors: tuple[str, ...]

    def ranking_latency(self, defs: dict[str, MetricDef]) -> str | None:
        """The latency metric a leaderboard ranks on: the highest quantile if any, else the
        first latency metric."""
        quantiles = [k for k in self.latency if defs[k].kind == "quantile"]
        if quantiles:
            return max(quantiles, key=lambda k: defs[k].quantile or 0.0)
        return self.latency[0] if self.latency else None


def _matches(part: str, metric: MetricDef) -> bool:
    return bool(_WORDS[part].search(f"{metric.key} {metric.name}"))


def metric_roles(
    defs: dict[str, MetricDef], *, quality: str | None = None, cost: str | None = None
) -> Roles:
    """Assign the parts (see the module docstring); ``quality``/``cost`` name a metric
    explicitly (ignored when the snapshot has no such metric)."""
    costs = [k for k, m in defs.items() if _matches("cost", m)]
    latency = tuple(k for k, m in defs.items() if _matches("latency", m) and k not in costs)
    throughput = tuple(k for k, m in defs.items() if _matches("throughput", m))
    errors = tuple(k for k, m in defs.items() if _matches("errors", m))
    taken = set(costs) | set(latency) | set(throughput) | set(errors)
    if quality not in defs:
        quality = next(
            (k for k, m in defs.items() if _matches("quality", m) and k not in taken), None
        )
    if quality is None:
        quality = next((k for k, m in defs.items() if m.role == "primary" and k not in taken), None)
    if cost not in defs:
        cost = costs[0] if costs else None
    return Roles(quality, cost, latency, throughput, errors)


# -- cells -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One metric for one variant: the arm's value and, for a treatment, its effect."""

    metric: str
    label: str
    higher_is_better: bool
    value: float | None
    """The arm's mean (the quantile for quantile metrics)."""
    n: float | None
    delta: float | None = None
    """Treatment − control, in the metric's units (None for the control)."""
    ci_low: float | None = None
    ci_high: float | None = None
    rel: float | None = None
    rel_low: float | None = None
    rel_high: float | None = None
    p_value: float | None = None
    """The plan's corrected p-value when there is one, else the raw one."""
    significant: bool = False
    """Significant at the plan's α after its correction (the CI excluding zero without a
    p-value, e.g. Bayesian results)."""
    good: bool | None = None
    """Moved in the metric's good direction (None without an effect)."""
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        """Plain data (NaN → None)."""
        return {k: _clean(v) for k, v in asdict(self).items()}


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _significant(row: ResultRow, alpha: float) -> bool:
    p = row.p_value_adjusted if row.p_value_adjusted is not None else row.p_value
    if p is not None and math.isfinite(p):
        return p < alpha
    low, high = row.abs_ci_low, row.abs_ci_high
    return low is not None and high is not None and (low > 0 or high < 0)


def treatment_cell(row: ResultRow, metric: MetricDef, alpha: float) -> Cell:
    """A treatment's cell from its overall result row."""
    effect = row.abs_effect
    good = None if effect is None or effect == 0 else (effect > 0) == metric.higher_is_better
    p = row.p_value_adjusted if row.p_value_adjusted is not None else row.p_value
    return Cell(
        metric=metric.key,
        label=metric.label,
        higher_is_better=metric.higher_is_better,
        value=row.treatment_mean,
        n=row.treatment_n,
        delta=effect,
        ci_low=row.abs_ci_low,
        ci_high=row.abs_ci_high,
        rel=row.rel_effect,
        rel_low=row.rel_ci_low,
        rel_high=row.rel_ci_high,
        p_value=p,
        significant=_significant(row, alpha),
        good=good,
        reason=row.reason,
    )


def control_cell(row: ResultRow, metric: MetricDef) -> Cell:
    """The control's cell (its arm value, from any of its comparisons)."""
    return Cell(
        metric=metric.key,
        label=metric.label,
        higher_is_better=metric.higher_is_better,
        value=row.control_mean,
        n=row.control_n,
    )


# -- cost arithmetic ---------------------------------------------------------------------


@dataclass(frozen=True)
class CostFigures:
    """What a variant's cost per request means against the control's."""

    savings_per_request: float | None
    savings_pct: float | None
    savings_per_million: float | None
    efficiency_gain_pct: float | None
    roi_pct: float | None
    roi_basis: str
    """``savings`` (cost saved only), ``savings+quality`` (with the quality change's value)
    or ``""`` when there is no ROI."""
    savings_ci: tuple[float | None, float | None] | None = None
    """A measured cost only: the savings per request's interval — the cost effect's CI
    negated (a listed price is exact and has none)."""
    savings_pct_ci: tuple[float | None, float | None] | None = None
    """A measured cost only: the savings %'s interval — the relative cost effect's CI
    negated, × 100."""


def _ok(*values: float | None) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def cost_figures(
    *,
    control_cost: float | None,
    variant_cost: float | None,
    control_quality: float | None = None,
    variant_quality: float | None = None,
    value_per_quality_unit: float | None = None,
) -> CostFigures:
    """Savings, efficiency gain and ROI of a variant against the control (module docstring
    for the formulas); a figure whose inputs are missing or zero where they divide is None."""
    savings = savings_pct = per_million = efficiency = roi = None
    basis = ""
    if _ok(control_cost, variant_cost):
        assert control_cost is not None and variant_cost is not None
        savings = control_cost - variant_cost
        per_million = savings * 1e6
        if control_cost != 0:
            savings_pct = savings / control_cost * 100.0
        if variant_cost != 0:
            gain = 0.0
            basis = "savings"
            if _ok(control_quality, variant_quality, value_per_quality_unit):
                assert control_quality is not None and variant_quality is not None
                assert value_per_quality_unit is not None
                gain = (variant_quality - control_quality) * value_per_quality_unit
                basis = "savings+quality"
            roi = (gain + savings) / variant_cost * 100.0
        if (
            _ok(control_quality, variant_quality)
            and control_cost != 0
            and variant_cost != 0
            and control_quality != 0
        ):
            assert control_quality is not None and variant_quality is not None
            efficiency = (
                (variant_quality / variant_cost) / (control_quality / control_cost) - 1.0
            ) * 100.0
    return CostFigures(savings, savings_pct, per_million, efficiency, roi, basis)


def _negated(
    low: float | None, high: float | None, scale: float
) -> tuple[float | None, float | None] | None:
    """The interval of −x (scaled) from x's interval; None when either end is missing."""
    if not _ok(low, high):
        return None
    assert low is not None and high is not None
    return (-high * scale, -low * scale)


def payload_number(payload: Any, name: str) -> float | None:
    """A finite number ≥ 0 from a payload field, else None (text, booleans, negatives)."""
    if not isinstance(payload, dict):
        return None
    value = payload.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None


def config_label(variant: str, payload: Any) -> str:
    """A configuration's name from its payload's identifying fields (``model``, ``prompt``,
    ``build``…; prices left out), else the variant's key."""
    if not isinstance(payload, dict):
        return variant
    parts = []
    for name, value in payload.items():
        if name in NUMERIC_FIELDS or isinstance(value, dict | list):
            continue
        parts.append(
            str(value) if name in ("model", "prompt", "prompt_id", "build") else f"{name}={value}"
        )
    return " · ".join(parts[:4]) if parts else variant


# -- the overlay -------------------------------------------------------------------------


@dataclass
class VariantOverlay:
    """One variant of the overlay: its configuration and its cells by part."""

    variant: str
    is_control: bool
    config: str
    payload: Any
    quality: Cell | None = None
    cost: Cell | None = None
    cost_source: str = ""
    """``payload`` (a listed price), ``metric`` (measured) or ``""`` (unknown)."""
    figures: CostFigures | None = None
    latency: list[Cell] = field(default_factory=list)
    throughput: list[Cell] = field(default_factory=list)
    errors: list[Cell] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Plain data."""

        def cells(items: list[Cell]) -> list[dict[str, Any]]:
            return [c.to_json() for c in items]

        return {
            "variant": self.variant,
            "is_control": self.is_control,
            "config": self.config,
            "payload": self.payload,
            "quality": self.quality.to_json() if self.quality else None,
            "cost": (self.cost.to_json() | {"exact": self.cost_source == "payload"})
            if self.cost
            else None,
            "cost_source": self.cost_source,
            "figures": {k: _clean(v) for k, v in asdict(self.figures).items()}
            if self.figures
            else None,
            "latency": cells(self.latency),
            "throughput": cells(self.throughput),
            "errors": cells(self.errors),
        }


def _cell(
    snapshot: Snapshot,
    defs: dict[str, MetricDef],
    key: str,
    variant: str,
    control: str,
    alpha: float,
) -> Cell | None:
    metric = defs.get(key)
    if metric is None:
        return None
    rows = [r for r in snapshot.overall() if r.metric == key]
    if not rows:
        return None
    if variant == control:
        return control_cell(rows[0], metric)
    row = next((r for r in rows if r.variant == variant), None)
    return treatment_cell(row, metric, alpha) if row is not None else None


def _price_cell(variant_price: float, control_price: float | None, key: str) -> Cell:
    delta = None if control_price is None else variant_price - control_price
    rel = None if not control_price or delta is None else delta / control_price
    return Cell(
        metric=key,
        label="Cost per request (listed price)",
        higher_is_better=False,
        value=variant_price,
        n=None,
        delta=delta,
        ci_low=delta,
        ci_high=delta,
        rel=rel,
        rel_low=rel,
        rel_high=rel,
        significant=bool(delta),
        good=None if not delta else delta < 0,
    )


def overlay(
    snapshot: Snapshot,
    payloads: dict[str, Any],
    *,
    quality: str | None = None,
    cost: str | None = None,
    value_per_quality_unit: float | None = None,
) -> tuple[Roles, list[VariantOverlay]]:
    """Per variant (control first): quality, cost and its figures, latency, throughput and
    errors.  ``payloads`` maps variant keys to their payloads."""
    defs = metric_defs(snapshot)
    roles = metric_roles(defs, quality=quality, cost=cost)
    alpha = float(snapshot.settings.get("alpha", 0.05))
    variants = [u.variant for u in snapshot.units]
    control = variants[0]
    prices = {v: payload_number(payloads.get(v), COST_FIELD) for v in variants}
    use_prices = all(p is not None for p in prices.values())
    out: list[VariantOverlay] = []
    for v in variants:
        item = VariantOverlay(
            variant=v,
            is_control=v == control,
            config=config_label(v, payloads.get(v)),
            payload=payloads.get(v),
        )
        if roles.quality:
            item.quality = _cell(snapshot, defs, roles.quality, v, control, alpha)
        if use_prices:
            price = prices[v]
            assert price is not None
            item.cost = _price_cell(price, None if v == control else prices[control], COST_FIELD)
            item.cost_source = "payload"
        elif roles.cost:
            item.cost = _cell(snapshot, defs, roles.cost, v, control, alpha)
            item.cost_source = "metric" if item.cost else ""
        item.latency = [
            c for k in roles.latency if (c := _cell(snapshot, defs, k, v, control, alpha))
        ]
        item.throughput = [
            c for k in roles.throughput if (c := _cell(snapshot, defs, k, v, control, alpha))
        ]
        item.errors = [
            c for k in roles.errors if (c := _cell(snapshot, defs, k, v, control, alpha))
        ]
        out.append(item)
    base = out[0]
    for item in out[1:]:
        value = value_per_quality_unit
        if value is None:
            value = payload_number(item.payload, VALUE_FIELD) or payload_number(
                base.payload, VALUE_FIELD
            )
        figures = cost_figures(
            control_cost=base.cost.value if base.cost else None,
            variant_cost=item.cost.value if item.cost else None,
            control_quality=base.quality.value if base.quality else None,
            variant_quality=item.quality.value if item.quality else None,
            value_per_quality_unit=value,
        )
        cost_cell = item.cost
        if item.cost_source == "metric" and cost_cell is not None:
            figures = replace(
                figures,
                savings_ci=_negated(cost_cell.ci_low, cost_cell.ci_high, 1.0),
                savings_pct_ci=_negated(cost_cell.rel_low, cost_cell.rel_high, 100.0),
            )
        item.figures = figures
    return roles, out
