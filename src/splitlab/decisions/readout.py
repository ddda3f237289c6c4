"""The deterministic readout: a snapshot and its recommendation told in plain words.

``build_readout(snapshot=…, recommendation=…, spec=…)`` gives a typed :class:`Readout` —
sections (hypothesis and prediction, what happened, health, recommendation and why, caveats),
each a title with paragraphs and bullets — that renders to text and Markdown and is what the
reports (``decisions.reports``) and the LLM prompt (``decisions.llm``) start from.  The same
inputs always give the same words: nothing here reads a clock or the network.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from splitlab.analysis.snapshot import CheckName, ResultRow, Severity, Snapshot
from splitlab.decisions.recommendation import Code, Recommendation, Stage
from splitlab.domain import Correction, Direction, Engine, ExperimentSpec, MetricRole

CORRECTION_NAMES = {
    Correction.HOLM: "Holm correction",
    Correction.BH: "Benjamini-Hochberg correction",
}
NOVELTY_MIN_DAYS = 14
"""Fewer days than this cannot show an effect that fades (novelty) or grows (learning)."""


class ReadoutModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class Section(ReadoutModel):
    """One part of a readout."""

    key: str
    """Stable machine name: ``hypothesis``, ``results``, ``health``, ``recommendation``,
    ``caveats``."""
    title: str
    """The heading people read."""
    paragraphs: tuple[str, ...] = ()
    """Prose, in order."""
    bullets: tuple[str, ...] = ()
    """A list after the prose."""


class Readout(ReadoutModel):
    """The readout of one snapshot under one recommendation."""

    experiment: str
    """The experiment's key."""
    title: str
    """The experiment's name (its key when it has none)."""
    headline: str
    """The recommendation in one line: label, code and summary."""
    sections: tuple[Section, ...]
    """In reading order."""

    def section(self, key: str) -> Section:
        """The section named ``key`` (KeyError if none)."""
        for section in self.sections:
            if section.key == key:
                return section
        raise KeyError(key)

    def to_text(self) -> str:
        """Plain text: underlined headings, bullets as ``- ``."""
        lines = [self.title, "=" * len(self.title), "", self.headline, ""]
        for section in self.sections:
            lines += [section.title, "-" * len(section.title)]
            lines += [p for paragraph in section.paragraphs for p in (paragraph, "")]
            lines += [f"- {bullet}" for bullet in section.bullets]
            if section.bullets:
                lines.append("")
        return "\n".join(lines).rstrip() + "\n"

    def to_markdown(self, *, level: int = 1) -> str:
        """Markdown, the title at heading ``level`` and sections one below."""
        top, sub = "#" * level, "#" * (level + 1)
        lines = [f"{top} {_md(self.title)}", "", f"**{_md(self.headline)}**", ""]
        for section in self.sections:
            lines += [f"{sub} {section.title}", ""]
            lines += [p for paragraph in section.paragraphs for p in (_md(paragraph), "")]
            lines += [f"- {_md(bullet)}" for bullet in section.bullets]
            if section.bullets:
                lines.append("")
        return "\n".join(lines).rstrip() + "\n"

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return self.model_dump(mode="json")


def _md(text: str) -> str:
    """Text safe inside Markdown prose: characters that would start markup are escaped."""
    for char in ("\\", "*", "_", "`", "[", "]", "<", ">", "|", "#"):
        text = text.replace(char, "\\" + char)
    return text


@dataclass(frozen=True)
class MetricInfo:
    """What a readout needs to know of a metric, from the snapshot's settings."""

    key: str
    name: str
    role: MetricRole
    direction: Direction
    margin: float | None
    margin_scale: str | None = None
    """``absolute`` for a margin in the metric's units; else relative (a fraction)."""


def metric_infos(snapshot: Snapshot) -> dict[str, MetricInfo]:
    """Each analysed metric's name, role, direction and guardrail margin, in plan order."""
    infos: dict[str, MetricInfo] = {}
    for entry in snapshot.settings.get("metrics", []):
        definition = entry.get("definition", {})
        key = str(definition.get("key", ""))
        infos[key] = MetricInfo(
            key=key,
            name=str(definition.get("name") or key),
            role=MetricRole(entry.get("role", MetricRole.SECONDARY)),
            direction=Direction(definition.get("direction", Direction.INCREASE)),
            margin=entry.get("margin"),
            margin_scale=entry.get("margin_scale"),
        )
    for row in snapshot.results:  # a metric the settings do not describe still reads
        infos.setdefault(
            row.metric,
            MetricInfo(row.metric, row.metric, MetricRole.SECONDARY, Direction.INCREASE, None),
        )
    return infos


def alpha_of(snapshot: Snapshot) -> float:
    """The plan's significance level (0.05 when the settings do not say)."""
    alpha = snapshot.settings.get("alpha")
    return float(alpha) if isinstance(alpha, int | float) and 0 < alpha < 1 else 0.05


def percent(value: float, *, sign: bool = False) -> str:
    """A fraction as a percentage: one decimal, two below 0.1%."""
    digits = 2 if abs(value) < 0.001 else 1
    return f"{value:+.{digits}%}" if sign else f"{value:.{digits}%}"


def margin_text(margin: float, scale: str | None) -> str:
    """A guardrail margin on its scale: ``5.0%`` (relative), ``0.5 (absolute)``."""
    if scale == "absolute":
        return f"{margin:.4g} (absolute)"
    return percent(margin)


def p_text(value: float) -> str:
    """``p = 0.034``, or ``p < 0.001``."""
    return "p < 0.001" if value < 0.001 else f"p = {value:.3f}"


def _number(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"


def _finite(*values: float | None) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def _level(alpha: float) -> str:
    return f"{1 - alpha:.0%}" if round((1 - alpha) * 100, 6).is_integer() else f"{1 - alpha:.1%}"


def _segment_text(row: ResultRow) -> str:
    return "" if row.segment is None else f" in {row.segment.name} = {row.segment.value}"


def effect_sentence(
    row: ResultRow, info: MetricInfo, *, control: str, alpha: float, correction: Correction
) -> str:
    """One comparison in plain words: direction, size, interval, significance, and whether
    the change is good or bad for the metric's direction."""
    subject = f"{info.name} for {row.variant} vs {control}{_segment_text(row)}"
    if row.reason or not _finite(row.rel_effect):
        why = row.reason or "no finite relative effect"
        return f"{subject}: no estimate ({why})."
    effect = float(row.rel_effect)  # type: ignore[arg-type]
    verb = "rose" if effect > 0 else "fell" if effect < 0 else "did not change"
    size = f" {percent(abs(effect))}" if effect else ""
    level = _level(alpha)
    bayesian = row.engine is Engine.BAYESIAN
    if bayesian and _finite(row.credible_low, row.credible_high):
        interval = (
            f"{level} credible interval {percent(row.credible_low)} to "  # type: ignore[arg-type]
            f"{percent(row.credible_high)}"  # type: ignore[arg-type]
        )
    elif _finite(row.rel_ci_low, row.rel_ci_high):
        kind = "always-valid " if row.engine is Engine.SEQUENTIAL else ""
        interval = (
            f"{kind}{level} CI {percent(row.rel_ci_low)} to "  # type: ignore[arg-type]
            f"{percent(row.rel_ci_high)}"  # type: ignore[arg-type]
        )
    else:
        interval = "no interval"
    text = f"{subject} {verb}{size} ({interval})"
    means = ""
    if _finite(row.control_mean, row.treatment_mean):
        means = (
            f" Means: {_number(row.control_mean)} ({control}), "
            f"{_number(row.treatment_mean)} ({row.variant})."
        )
    good = (effect > 0) == (info.direction is Direction.INCREASE)
    lower = info.direction is Direction.DECREASE
    if bayesian:
        if _finite(row.chance_to_win):
            chance = float(row.chance_to_win)  # type: ignore[arg-type]
            text += f", chance to beat {control} {chance:.1%}"
            if _finite(row.risk_treatment):
                text += f", expected loss {_number(row.risk_treatment)}"
        return text + ("; lower is better." if lower else ".") + means
    significant, note = _significance(row, alpha=alpha, correction=correction)
    if significant and effect:
        verdict = "an improvement" if good else "a regression"
        verdict += ", since lower is better" if lower else ""
        return f"{text}, {note}: {verdict}.{means}"
    return f"{text}, {note}" + ("; lower is better." if lower else ".") + means


def _significance(row: ResultRow, *, alpha: float, correction: Correction) -> tuple[bool, str]:
    """Whether the comparison is significant at ``alpha`` after the plan's correction, and how
    to say so."""
    if not _finite(row.p_value):
        return False, "no p-value"
    p = float(row.p_value)  # type: ignore[arg-type]
    sequential = " on the always-valid sequential test" if row.engine is Engine.SEQUENTIAL else ""
    name = CORRECTION_NAMES.get(correction)
    adjusted = row.p_value_adjusted
    if name is None or not _finite(adjusted):
        if p < alpha:
            return True, f"significant{sequential} ({p_text(p)})"
        return False, f"not significant ({p_text(p)})"
    p_adjusted = float(adjusted)  # type: ignore[arg-type]
    if p_adjusted < alpha:
        return True, f"significant{sequential} after {name} (adjusted {p_text(p_adjusted)})"
    if p < alpha:
        return False, (
            f"significant alone ({p_text(p)}) but not after {name} (adjusted {p_text(p_adjusted)})"
        )
    return False, f"not significant ({p_text(p)})"


ROLE_ORDER = {MetricRole.PRIMARY: 0, MetricRole.SECONDARY: 1, MetricRole.GUARDRAIL: 2}
ROLE_LABEL = {
    MetricRole.PRIMARY: "Primary",
    MetricRole.SECONDARY: "Secondary",
    MetricRole.GUARDRAIL: "Guardrail",
}


def _results_section(snapshot: Snapshot, infos: dict[str, MetricInfo]) -> Section:
    alpha = alpha_of(snapshot)
    correction = Correction(snapshot.settings.get("correction", Correction.HOLM))
    control = snapshot.units[0].variant if snapshot.units else "control"
    units = ", ".join(f"{u.variant} {u.n:,}" for u in snapshot.units)
    days = len(snapshot.days)
    span = f" over {days} day{'s' * (days != 1)}" if days else ""
    intro = f"{sum(u.n for u in snapshot.units):,} units analysed{span} ({units})."
    rows = sorted(
        snapshot.overall(), key=lambda r: (ROLE_ORDER[infos[r.metric].role], _order(infos, r))
    )
    bullets = []
    for row in rows:
        info = infos[row.metric]
        role = ROLE_LABEL[info.role]
        if info.role is MetricRole.GUARDRAIL and info.margin is not None:
            role += f", margin {margin_text(info.margin, info.margin_scale)}"
        sentence = effect_sentence(row, info, control=control, alpha=alpha, correction=correction)
        bullets.append(f"{role}: {sentence}")
    paragraphs = [intro]
    critical = sorted({c.check.value for c in snapshot.health if c.severity is Severity.CRITICAL})
    if critical:  # the numbers follow, but must not be read as results (landing-redirect)
        paragraphs.append(
            f"A critical health check failed ({', '.join(critical)}): the numbers below are "
            "for diagnosis only and cannot be trusted as results until the cause is found."
        )
    segment_lines = _segment_findings(
        snapshot, infos, alpha=alpha, control=control, correction=correction
    )
    if segment_lines:
        paragraphs.append(
            f"{len(segment_lines)} pre-registered segment result(s) of the primary metric are "
            "significant after correcting across their breakdown's values (listed last)."
        )
        bullets += [f"Segment: {line}" for line in segment_lines]
    return Section(
        key="results", title="What happened", paragraphs=tuple(paragraphs), bullets=tuple(bullets)
    )


def _order(infos: dict[str, MetricInfo], row: ResultRow) -> int:
    return list(infos).index(row.metric)


def _segment_findings(
    snapshot: Snapshot,
    infos: dict[str, MetricInfo],
    *,
    alpha: float,
    control: str,
    correction: Correction,
) -> list[str]:
    """Segment results of the primary metric that are significant after the correction
    within their breakdown."""
    primary = {k for k, i in infos.items() if i.role is MetricRole.PRIMARY}
    found = []
    for row in snapshot.results:
        if row.segment is None or row.metric not in primary or row.reason:
            continue
        if _finite(row.p_value_adjusted, row.rel_effect) and row.p_value_adjusted < alpha:  # type: ignore[operator]
            found.append(
                effect_sentence(
                    row, infos[row.metric], control=control, alpha=alpha, correction=correction
                )
            )
    return found


def _hypothesis_section(spec: ExperimentSpec | None) -> Section:
    hypothesis = spec.hypothesis.strip() if spec else ""
    predicted = spec.predicted_outcome.strip() if spec else ""
    return Section(
        key="hypothesis",
        title="Hypothesis and prediction",
        paragraphs=(
            f"Hypothesis: {hypothesis or 'none was written down before the experiment.'}",
            f"Predicted outcome: {predicted or 'none was written down before the experiment.'}",
        ),
    )


def _health_section(snapshot: Snapshot) -> Section:
    problems = [c for c in snapshot.health if c.severity is not Severity.INFO]
    critical = [c for c in problems if c.severity is Severity.CRITICAL]
    total = len(snapshot.health)
    if not problems:
        summary = f"All {total} health checks passed: the split and the data look trustworthy."
    elif critical:
        summary = (
            f"{len(critical)} critical and {len(problems) - len(critical)} warning finding(s) "
            f"among {total} checks: do not trust the results until the critical ones are "
            "explained."
        )
    else:
        summary = f"{len(problems)} warning(s) among {total} checks; no critical finding."
    srm = snapshot.checks(CheckName.SRM)
    paragraphs = [summary] + ([f"Sample ratio: {srm[0].message}"] if srm else [])
    bullets = tuple(
        f"{c.severity.value.upper()} {c.check.value}"
        + (
            f" ({', '.join(n for n in (c.metric, c.variant) if n)})"
            if c.metric or c.variant
            else ""
        )
        + f": {c.message}"
        for c in problems
    )
    return Section(key="health", title="Health", paragraphs=tuple(paragraphs), bullets=bullets)


def _recommendation_section(recommendation: Recommendation) -> Section:
    paragraphs = [f"{recommendation.label} ({recommendation.code.value}): {recommendation.summary}"]
    if recommendation.variant:
        paragraphs.append(f"Variant: {recommendation.variant}.")
    if recommendation.segments:
        names = ", ".join(f"{s.get('name')} = {s.get('value')}" for s in recommendation.segments)
        paragraphs.append(f"Segments to ship to: {names}.")
    for value in recommendation.value:
        currency = f" {value.currency}" if value.currency else ""
        paragraphs.append(
            f"Expected net value of {value.variant}: {_number(value.per_day)}{currency} per day "
            f"(CI {_number(value.ci_low)} to {_number(value.ci_high)})."
        )
    paragraphs.append(f"Policy: {recommendation.policy} ({recommendation.policy_hash[:12]}).")
    bullets = tuple(f"{r.stage.value}: {r.message}" for r in recommendation.reasons)
    return Section(
        key="recommendation",
        title="Recommendation and why",
        paragraphs=tuple(paragraphs),
        bullets=bullets,
    )


def _caveats(
    snapshot: Snapshot, infos: dict[str, MetricInfo], *, always_valid: bool = False
) -> Iterable[str]:
    """``always_valid``: the recommendation decided before the planned sample on the always-valid
    interval (the peeking caveat then says the verdict does not rest on the fixed-horizon
    numbers, instead of calling a significant result "not yet a result" beside it)."""
    alpha = alpha_of(snapshot)
    primary = [r for r in snapshot.overall() if infos[r.metric].role is MetricRole.PRIMARY]
    remaining = [r.days_remaining for r in primary if r.days_remaining]
    if snapshot.engine is Engine.FREQUENTIST:
        reached = (
            f"the planned sample is not reached yet ({max(remaining):,} more day(s) needed), so "
            "a significant result now is not yet a result"
            if remaining
            else "read them once, at the planned end"
        )
        if always_valid:
            reached = (
                f"the planned sample is not reached yet ({max(remaining):,} more day(s) "
                "needed), so the recommendation does not rest on them: it decides early on "
                "the always-valid interval, which stays valid however often it is looked at"
                if remaining
                else f"{reached}; the recommendation rests on the always-valid interval, "
                "which stays valid however often it is looked at"
            )
        yield (
            "Peeking: these are fixed-horizon p-values and CIs, valid for one look at the "
            "planned sample size. Checking them day after day and stopping at the first "
            f"significant one inflates the false-positive rate well above {alpha:.0%}; "
            f"{reached}."
        )
    elif snapshot.engine is Engine.SEQUENTIAL:
        yield (
            "Peeking: the sequential engine's p-values and CIs are always valid, so looking "
            "at them daily is safe; they are wider than fixed-horizon ones in exchange."
        )
    else:
        horizon = [c for c in snapshot.checks(CheckName.BAYESIAN_HORIZON)]
        early = [c.message for c in horizon if c.severity is not Severity.INFO]
        yield (
            "Peeking: a chance to win checked daily and acted on at 95% is a far higher "
            "false-positive rule than 5%; decide at the planned horizon."
            + (f" {early[0]}" if early else "")
        )
    count = sum(1 for _ in snapshot.overall())
    comparisons, are = (
        (f"{count} comparison", "is") if count == 1 else (f"{count} comparisons", "are")
    )
    correction = Correction(snapshot.settings.get("correction", Correction.HOLM))
    if snapshot.engine is not Engine.BAYESIAN:
        name = CORRECTION_NAMES.get(correction)
        if name is None:
            yield (
                f"Multiple testing: {comparisons} (metrics x treatments) {are} read "
                "without a correction; expect about one false positive in every "
                f"{max(1, round(1 / alpha))} null comparisons."
            )
        else:
            yield (
                f"Multiple testing: {comparisons} (metrics x treatments) {are} corrected "
                f"together with the {name}; segment values are corrected within "
                "each breakdown, not across breakdowns."
            )
    novelty = [c for c in snapshot.checks(CheckName.NOVELTY) if c.severity is not Severity.INFO]
    days = len(snapshot.days)
    if novelty:
        yield "Novelty: " + " ".join(c.message for c in novelty)
    elif days < NOVELTY_MIN_DAYS:
        yield (
            f"Novelty: {days} day(s) of data cannot show an effect that fades as users get "
            "used to the change (or grows as they learn it); two full weeks can."
        )
    segments = [str(s) for s in snapshot.settings.get("segments", [])]
    if segments:
        yield (
            f"Segments: only the pre-registered breakdowns ({', '.join(segments)}) are "
            "analysed and may support a decision; a segment found by slicing after the fact "
            "is a hypothesis for a new experiment, not a result."
        )
    else:
        yield (
            "Segments: none were pre-registered, so any segment effect found after the fact "
            "is a hypothesis for a new experiment, not a result."
        )
    under = [c for c in snapshot.checks(CheckName.UNDERPOWERED) if c.severity is not Severity.INFO]
    if under:
        yield (
            "Power: "
            + " ".join(c.message for c in under)
            + (" A non-significant result here is weak evidence that there is no effect.")
        )


def _caveats_section(
    snapshot: Snapshot, infos: dict[str, MetricInfo], *, always_valid: bool = False
) -> Section:
    return Section(
        key="caveats",
        title="Caveats",
        bullets=tuple(_caveats(snapshot, infos, always_valid=always_valid)),
    )


def build_readout(
    *, snapshot: Snapshot, recommendation: Recommendation, spec: ExperimentSpec | None = None
) -> Readout:
    """The readout of ``snapshot`` under ``recommendation``; ``spec`` gives the name,
    hypothesis and predicted outcome (absent: said to be missing)."""
    infos = metric_infos(snapshot)
    title = (spec.name if spec and spec.name else "") or snapshot.experiment
    headline = f"{recommendation.label} ({recommendation.code.value}): {recommendation.summary}"
    return Readout(
        experiment=snapshot.experiment,
        title=title,
        headline=headline,
        sections=(
            _hypothesis_section(spec),
            _results_section(snapshot, infos),
            _health_section(snapshot),
            _recommendation_section(recommendation),
            _caveats_section(snapshot, infos, always_valid=_rests_on_always_valid(recommendation)),
        ),
    )


def _rests_on_always_valid(recommendation: Recommendation) -> bool:
    """Whether the recommendation rests on always-valid bounds: it decided before the planned
    sample, or the guardrail stage rolls back a running experiment (it does so only on an
    always-valid breach; a rollback by the primary stage rests on the fixed-horizon test)."""
    reasons = recommendation.reasons
    by_guardrails = recommendation.code is Code.ROLLBACK and not any(
        r.stage is Stage.PRIMARY for r in reasons
    )
    return by_guardrails or any(r.code == "early_on_always_valid_bound" for r in reasons)
