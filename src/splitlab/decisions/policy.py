"""The decision policy: a YAML contract (strict: unknown keys are errors) with a built-in
default, overridden in turn by the stored policies ``default``, ``team-{team}`` and
``experiment-{key}``.

Stored policies are *partial* documents: only the fields present override, dictionaries merge
deeply (lists replace).  ``parse_policy`` validates a document and names the failing field's
path (``guardrails.rules[0].max_ratio: must be > 1``) in the message and in ``details``.

Example (every field optional)::

    trust:
      critical_checks: [srm, multiple_exposure, pre_period_imbalance, no_data]
      multiple_exposure_max: 0.05
    guardrails:
      rules: [{metric: lr-latency-ms, max_ratio: 1.25}]
      rollback_when_running: true
    maturity: {min_units_per_variant: 100, min_days: 7, require_mature_windows: true}
    primary: {min_lift: {default: 0, metrics: {gp-conversion: "5%", gp-aov: 0.5}}}
    segments: {correction: holm, min_units: 200}
    value:
      metrics: {gp-revenue: 1.0}
      cost_per_unit: {treatment: 0.002}
      units_per_day: 5000
      currency: USD
    bayesian: {chance_to_win: 0.95, max_expected_loss: 0.001}
    sequential: {early_on_always_valid_bounds: true, tuning: 5000}
    override_requires_approval: true
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from typing import Annotated, Any, Literal

import pydantic
import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from splitlab.analysis.snapshot import CheckName
from splitlab.errors import ValidationError

POLICY_NAME_PATTERN = r"^(default|team-[A-Za-z0-9_\-]{1,100}|experiment-[a-z0-9][a-z0-9_\-]{0,99})$"
"""Stored policy names: ``default``, ``team-{team}``, ``experiment-{key}``."""
MAX_POLICY_CHARS = 64_000
"""Longest policy document accepted (YAML or JSON text)."""
_RELATIVE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*%\s*$")


class PolicyModel(BaseModel):
    """Frozen, strict about unknown keys and non-finite numbers."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", allow_inf_nan=False, use_attribute_docstrings=True
    )


MetricKey = Annotated[str, Field(min_length=1, max_length=100)]


class TrustPolicy(PolicyModel):
    """Stage 1: which health findings make the results untrustworthy."""

    critical_checks: list[CheckName] = Field(
        default_factory=lambda: [
            CheckName.SRM,
            CheckName.MULTIPLE_EXPOSURE,
            CheckName.PRE_PERIOD_IMBALANCE,
            CheckName.NO_DATA,
        ],
        max_length=len(CheckName),
    )
    """Checks whose warning or critical findings invalidate the experiment (multiple exposure
    is judged by ``multiple_exposure_max`` instead of its severity)."""
    multiple_exposure_max: float = Field(default=0.05, ge=0, le=1)
    """Largest share of units exposed to more than one variant that is tolerated."""


class RatioRule(PolicyModel):
    """``treatment mean > max_ratio × control mean`` breaches (for a decrease-is-better
    metric; for increase-is-better, ``treatment mean < control mean / max_ratio``)."""

    metric: MetricKey
    """The metric's key (a guardrail, secondary or primary metric of the experiment)."""
    max_ratio: float = Field(gt=1, le=1000)
    """The tolerated ratio of the means (e.g. 1.25)."""


class GuardrailPolicy(PolicyModel):
    """Stage 2: guardrail non-inferiority (each guardrail's margin) and ratio rules."""

    non_inferiority: bool = True
    """Hold when a guardrail cannot be shown non-inferior within its margin."""
    rules: list[RatioRule] = Field(default_factory=list, max_length=100)
    """Ratio rules on metric means."""
    rollback_when_running: bool = True
    """A running experiment with a significant breach (always-valid interval) → ROLLBACK."""
    latency_metrics: list[str] = Field(
        default_factory=lambda: ["*latency*", "*-ms", "*_ms"], max_length=50
    )
    """Glob patterns of metric keys whose breach reads ``PENDING (LATENCY REGRESSION)``."""


class MaturityPolicy(PolicyModel):
    """Stage 3: enough units, days and closed metric windows; the planned sample."""

    min_units_per_variant: int = Field(default=100, ge=0, le=10**12)
    """Fewer units in any variant → KEEP_RUNNING."""
    min_days: int = Field(default=7, ge=0, le=3650)
    """Fewer days with exposures → KEEP_RUNNING (a full week covers weekly cycles)."""
    require_mature_windows: bool = True
    """A metric whose window is still open for most units (maturity warning) → KEEP_RUNNING."""
    require_planned_sample: bool = True
    """Short of the plan's required sample (``n_required``) without a decisive result →
    PENDING_UNDERPOWERED with the projected days."""
    hold_on_novelty: bool = True
    """While running, a fading effect on the primary metric (the novelty warning: later
    cohorts show a larger effect) → KEEP_RUNNING until it settles: the overall estimate
    overstates the lasting effect."""


def _check_lift(value: float | str) -> float | str:
    if isinstance(value, str):
        if not _RELATIVE.match(value):
            raise ValueError('must be a number (absolute) or a percentage such as "5%"')
        if value.strip().startswith("-"):
            raise ValueError("must not be negative")
    elif value < 0:
        raise ValueError("must not be negative")
    return value


Lift = Annotated[float | str, AfterValidator(_check_lift)]
"""A minimum lift: a number (absolute) or ``"5%"`` (relative)."""


class MinLift(PolicyModel):
    """The minimum practical lift: a number is absolute (in the metric's unit), a string
    ``"5%"`` is relative to control."""

    default: Lift = 0.0
    """For metrics not listed."""
    metrics: dict[MetricKey, Lift] = Field(default_factory=dict, max_length=200)
    """Per metric key."""

    def threshold(self, metric: str) -> tuple[Literal["absolute", "relative"], float]:
        """The threshold for ``metric``: ``("relative", 0.05)`` or ``("absolute", 0.0043)``."""
        return lift_threshold(self.metrics.get(metric, self.default))


def lift_threshold(value: float | str) -> tuple[Literal["absolute", "relative"], float]:
    """``"5%"`` → ``("relative", 0.05)``; ``0.0043`` → ``("absolute", 0.0043)``."""
    if isinstance(value, str):
        match = _RELATIVE.match(value)
        if match is None:
            raise ValueError(f"not a lift: {value!r}")
        return "relative", float(match.group(1)) / 100.0
    return "absolute", float(value)


class PrimaryPolicy(PolicyModel):
    """Stage 4: the primary metric must win significantly and by the minimum lift."""

    min_lift: MinLift = Field(default_factory=MinLift)
    """Minimum practical lift per metric, or the default."""
    kill_on_significant_harm: bool = True
    """Significantly bad → KILL (ROLLBACK while running, when
    ``guardrails.rollback_when_running``)."""


class SegmentPolicy(PolicyModel):
    """Stage 5: targeted ships on pre-registered segments only."""

    enabled: bool = True
    """Look for segment wins when the overall result does not ship."""
    correction: Literal["holm", "bonferroni"] = "holm"
    """Correction across all tested segment values."""
    min_units: int = Field(default=200, ge=0, le=10**12)
    """A segment value needs at least this many units in each arm to be tested."""


class ValuePolicy(PolicyModel):
    """Stage 6: expected net value per day of shipping each treatment."""

    metrics: dict[MetricKey, float] = Field(default_factory=dict, max_length=200)
    """Value of one unit of each metric, per exposed unit (e.g. 1.0 per $ of revenue)."""
    cost_per_unit: dict[MetricKey, float] = Field(default_factory=dict, max_length=200)
    """Cost per exposed unit of each variant (e.g. model cost per request), by variant key."""
    units_per_day: float | None = Field(default=None, gt=0, le=1e12)
    """Units exposed per day after shipping; default: the experiment's own rate so far."""
    currency: str = Field(default="", max_length=10)
    """Shown beside the amounts."""


class BayesianPolicy(PolicyModel):
    """Bayesian plans: decide at the horizon, or early once the minimum sample is reached and
    the expected loss is below its threshold."""

    chance_to_win: float = Field(default=0.95, gt=0.5, lt=1)
    """Chance to beat control needed to ship."""
    max_expected_loss: float = Field(default=0.001, gt=0, le=1)
    """Expected loss (relative) of shipping below which an early decision is allowed."""
    min_units_per_variant: int = Field(default=1000, ge=0, le=10**12)
    """The minimum sample before an early decision."""


class SequentialPolicy(PolicyModel):
    """Sequential plans and running experiments."""

    early_on_always_valid_bounds: bool = True
    """Before the planned sample, decide when the always-valid interval excludes no effect
    (false: always wait for the planned sample). A fixed-horizon p-value never ends an
    experiment early."""
    tuning: float = Field(default=5000.0, gt=0, le=1e12)
    """Confidence-sequence tuning (total units where it is tightest) for guardrail checks on
    fixed-horizon plans."""


class Policy(PolicyModel):
    """A resolved decision policy."""

    name: str = Field(default="default", max_length=200)
    """The most specific stored policy that applied (``default``, ``team-…``,
    ``experiment-…``)."""
    trust: TrustPolicy = Field(default_factory=TrustPolicy)
    guardrails: GuardrailPolicy = Field(default_factory=GuardrailPolicy)
    maturity: MaturityPolicy = Field(default_factory=MaturityPolicy)
    primary: PrimaryPolicy = Field(default_factory=PrimaryPolicy)
    segments: SegmentPolicy = Field(default_factory=SegmentPolicy)
    value: ValuePolicy = Field(default_factory=ValuePolicy)
    bayesian: BayesianPolicy = Field(default_factory=BayesianPolicy)
    sequential: SequentialPolicy = Field(default_factory=SequentialPolicy)
    override_requires_approval: bool = True
    """A human decision against the recommendation waits for a reviewer's approval."""

    def document(self) -> dict[str, Any]:
        """The JSON form (what ``GET /api/policies/{name}`` returns)."""
        return self.model_dump(mode="json")

    def policy_hash(self) -> str:
        """Hash of the whole resolved policy (name included). The last policy hashed is
        remembered by identity (a fleet refresh decides many experiments under one policy
        object; a ``model_copy`` is another object, so never gets a stale hash)."""
        global _LAST_HASH
        last = _LAST_HASH
        if last is not None and last[0] is self:
            return last[1]
        canonical = json.dumps(self.document(), sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:32]
        _LAST_HASH = (self, digest)
        return digest


_LAST_HASH: tuple[Policy, str] | None = None


BUILTIN = Policy()
"""The built-in default policy."""


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(document)"


def _message(error: Any) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    simple = {
        "greater_than": "must be > {gt}",
        "greater_than_equal": "must be ≥ {ge}",
        "less_than": "must be < {lt}",
        "less_than_equal": "must be ≤ {le}",
    }
    if kind in simple:
        return simple[kind].format(**ctx)
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def _raise(errors: list[dict[str, Any]], *, prefix: str = "") -> None:
    details = [{"loc": [_path(tuple(e["loc"]))], "msg": _message(e)} for e in errors]
    text = "; ".join(f"{d['loc'][0]}: {d['msg']}" for d in details[:10])
    raise ValidationError(f"{prefix}invalid policy: {text}", details=details)


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader refusing a key given twice in one mapping (plain PyYAML keeps the
    last one silently, so ``maturity:`` written twice would drop the first section)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the base class names that problem
                break
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {str(key)[:80]!r} appears twice", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


def load_document(text_or_dict: str | bytes | dict[str, Any]) -> dict[str, Any]:
    """A policy document from YAML/JSON text (JSON is YAML) or a dict; ValidationError when it
    is not a mapping."""
    if isinstance(text_or_dict, dict):
        return text_or_dict
    text = (
        text_or_dict.decode("utf-8", "replace") if isinstance(text_or_dict, bytes) else text_or_dict
    )
    if len(text) > MAX_POLICY_CHARS:
        raise ValidationError(
            f"invalid policy: (document): too long, {len(text)} characters (at most "
            f"{MAX_POLICY_CHARS})",
            details=[{"loc": ["(document)"], "msg": "too long"}],
        )
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader) if text.strip() else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or ""
        why = f": {problem}" if "appears twice" in problem else ""
        raise ValidationError(
            f"invalid policy: (document): not valid YAML or JSON{where}{why}",
            details=[{"loc": ["(document)"], "msg": f"not valid YAML{where}{why}"}],
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValidationError(
            "invalid policy: (document): must be a mapping of sections (trust, guardrails, …)",
            details=[{"loc": ["(document)"], "msg": "must be a mapping"}],
        )
    return data


def parse_policy(text_or_dict: str | bytes | dict[str, Any], *, name: str = "default") -> Policy:
    """Validate a (possibly partial) policy document on top of the built-in defaults.

    Raises ``splitlab.errors.ValidationError`` whose message and ``details`` name the field
    path (``guardrails.rules[0].max_ratio: must be > 1``)."""
    document = load_document(text_or_dict)
    if "name" in document:
        _raise([{"type": "extra_forbidden", "loc": ("name",), "msg": ""}])
    return _validate(merge(BUILTIN.document(), document) | {"name": name})


def _validate(document: dict[str, Any]) -> Policy:
    try:
        return Policy.model_validate(document)
    except pydantic.ValidationError as exc:
        _raise([dict(e) for e in exc.errors()])
        raise  # unreachable


def merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """``overlay`` over ``base``: nested dicts merge, everything else replaces."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def overlay_names(*, team: str | None, key: str | None) -> list[str]:
    """The stored policies that apply, least specific first."""
    names = ["default"]
    if team:
        names.append(f"team-{team}")
    if key:
        names.append(f"experiment-{key}")
    return names


def resolve(overlays: list[tuple[str, dict[str, Any]]]) -> Policy:
    """The built-in default with the stored overlays ``(name, document)`` applied in order
    (least specific first); the policy is named after the last one (``default`` if none)."""
    document = BUILTIN.document()
    name = "default"
    for overlay_name, overlay in overlays:
        document = merge(document, {k: v for k, v in overlay.items() if k != "name"})
        name = overlay_name
    document["name"] = name
    try:
        return Policy.model_validate(document)
    except pydantic.ValidationError as exc:
        _raise(
            [dict(e) for e in exc.errors()], prefix=f"stored policies {[n for n, _ in overlays]}: "
        )
        raise  # unreachable
