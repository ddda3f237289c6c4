"""The intake wizard's forms: reading each step's fields into the domain's shapes, and the
domain's validation errors back onto the fields they concern.

Form field names follow the domain's error locations (``variants.0.key``, ``plan.alpha``,
``metrics.primary``), so a pydantic or store error lands next to its input; an error whose
location names no input of the step is shown at the top of the form.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from splitlab.domain import ExperimentType, MetricKind
from splitlab.domain.enums import Direction
from splitlab.domain.experiments import plain_float
from splitlab.domain.limits import MAX_VARIANTS
from splitlab.errors import SplitlabError


@dataclass(frozen=True)
class Step:
    """One step of the wizard: its number, its template's slug and its title."""

    number: int
    slug: str
    title: str


STEPS = (
    Step(1, "about", "Hypothesis"),
    Step(2, "variants", "Variants"),
    Step(3, "metrics", "Metrics"),
    Step(4, "sample-size", "Sample size"),
    Step(5, "duration", "Power and duration"),
    Step(6, "review", "Review and submit"),
)
TYPES = [t.value for t in ExperimentType]
KINDS = [k.value for k in MetricKind]
DIRECTIONS = [d.value for d in Direction]
NEW_METRIC_FIELDS = ("key", "name", "kind", "event", "denominator_event", "quantile", "direction")


@dataclass
class FormErrors:
    """Errors by field name, plus those that belong to no one field."""

    fields: dict[str, str] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    def add(self, name: str, message: str) -> None:
        """Add ``message`` under field ``name`` (joined to one already there)."""
        if name in self.fields:
            self.fields[name] += f"; {message}"
        else:
            self.fields[name] = message

    def __bool__(self) -> bool:
        return bool(self.fields or self.general)

    def to_json(self) -> dict[str, Any]:
        """The errors as the JSON twin shows them."""
        return {"fields": self.fields, "general": self.general}


SLUG_HELP = "use lower-case letters, digits, - and _ (starting with a letter or digit)"


def _clean(message: str) -> str:
    """A validation message as a form shows it (a key's regular expression in words)."""
    text = str(message).removeprefix("Value error, ")
    if text.startswith("String should match pattern '^[a-z0-9]"):
        return SLUG_HELP
    return text


def absorb(
    errors: FormErrors,
    error: SplitlabError,
    names: Iterable[str],
    *,
    prefix: str = "",
    rename: Mapping[str, str] | None = None,
) -> None:
    """Put each ``{loc, msg}`` of ``error.details`` on the step's field it names: the longest
    dotted prefix of its location (after ``prefix``) that is one of ``names`` (or a key of
    ``rename``, mapped); anything else, or an error without details, goes to ``general``."""
    known = set(names)
    details = error.details if isinstance(error.details, list) else []
    placed = False
    for detail in details:
        if not isinstance(detail, dict):
            continue
        loc = [str(part) for part in detail.get("loc", [])]
        message = _clean(detail.get("msg", ""))
        target = None
        for end in range(len(loc), 0, -1):
            candidate = prefix + ".".join(loc[:end])
            if rename and candidate in rename:
                target = rename[candidate]
                break
            if candidate in known:
                target = candidate
                break
        if target is None:
            where = ".".join(loc)
            errors.general.append(f"{where}: {message}" if where else message)
        else:
            errors.add(target, message)
        placed = True
    if not placed:
        errors.general.append(error.message)


def text(form: Mapping[str, Any], name: str) -> str:
    """A form field as stripped text ('' when absent or not text)."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


ABOUT_FIELDS = ("key", "name", "hypothesis", "predicted_outcome", "type", "team")


def about_fields(form: Mapping[str, Any]) -> dict[str, Any]:
    """Step 1: the experiment's identity and hypothesis, as given."""
    return {name: text(form, name) for name in ABOUT_FIELDS}


@dataclass
class VariantRowForm:
    """One row of the variants table as typed (weights in percent)."""

    key: str = ""
    name: str = ""
    weight: str = ""
    payload: str = ""

    @property
    def blank(self) -> bool:
        """Whether the row was left empty (it is then skipped)."""
        return not (self.key or self.name or self.weight or self.payload)


def variant_rows(form: Mapping[str, Any]) -> tuple[list[VariantRowForm], str]:
    """Step 2's rows (``variants.{i}.key|name|weight|payload``) in order, and the index of the
    row marked as control (``control``)."""
    rows = []
    for i in range(MAX_VARIANTS):
        row = VariantRowForm(
            key=text(form, f"variants.{i}.key"),
            name=text(form, f"variants.{i}.name"),
            weight=text(form, f"variants.{i}.weight"),
            payload=text(form, f"variants.{i}.payload"),
        )
        if f"variants.{i}.key" not in form:
            break
        rows.append(row)
    return rows, text(form, "control")


def parse_variants(
    rows: list[VariantRowForm], control: str, errors: FormErrors
) -> list[dict[str, Any]]:
    """The variants of the filled rows (blank rows are skipped; their field indices stay those
    of the form) with weights as fractions; problems of the form itself (a weight that is no
    percentage, a payload that is not JSON, no control, weights not adding up to 100%) go to
    ``errors`` under the row's field names."""
    variants: list[dict[str, Any]] = []
    total = 0.0
    chosen = [(i, row) for i, row in enumerate(rows) if not row.blank]
    for i, row in chosen:
        variant: dict[str, Any] = {
            "key": row.key,
            "name": row.name,
            "is_control": control == str(i),
        }
        try:
            percent = plain_float(row.weight)
            if not 0 <= percent <= 100:
                raise ValueError
            variant["weight"] = percent / 100
            total += percent
        except ValueError:
            errors.add(f"variants.{i}.weight", "a share of traffic between 0 and 100 (%)")
            variant["weight"] = 0.0
        if row.payload:
            try:
                variant["payload"] = json.loads(row.payload)
            except ValueError as exc:
                errors.add(f"variants.{i}.payload", f"not valid JSON: {exc}")
        variants.append(variant)
    if len(chosen) < 2:
        errors.general.append("an experiment needs at least two variants (a control and one more)")
    if chosen and not any(control == str(i) for i, _ in chosen):
        errors.add("control", "mark one variant as the control")
    if not any(name.endswith(".weight") for name in errors.fields) and abs(total - 100) > 1e-4:
        errors.add("weights", f"traffic shares must add up to 100%; they add up to {total:g}%")
    return variants


def form_index(rows: list[VariantRowForm]) -> dict[int, int]:
    """Position in the parsed variants → index of its row in the form (blank rows skipped)."""
    filled = [i for i, row in enumerate(rows) if not row.blank]
    return dict(enumerate(filled))


def variant_rename(rows: list[VariantRowForm]) -> dict[str, str]:
    """Error locations of parsed variants (``variants.{k}.field``) → the form's field names."""
    rename = {}
    for k, i in form_index(rows).items():
        for name in ("key", "name", "weight", "payload", "is_control"):
            target = "control" if name == "is_control" else f"variants.{i}.{name}"
            rename[f"variants.{k}.{name}"] = target
        rename[f"variants.{k}"] = f"variants.{i}.key"
    return rename


def rows_from_variants(variants: list[dict[str, Any]]) -> tuple[list[VariantRowForm], str]:
    """The form rows of a stored draft's variants (weights as percentages), control index."""
    rows = []
    control = ""
    for i, variant in enumerate(variants):
        payload = variant.get("payload")
        rows.append(
            VariantRowForm(
                key=variant["key"],
                name=variant.get("name", ""),
                weight=f"{variant['weight'] * 100:g}",
                payload="" if payload is None else json.dumps(payload, indent=1),
            )
        )
        if variant.get("is_control"):
            control = str(i)
    return rows, control


def metric_choice(form: Any, known: set[str], errors: FormErrors) -> dict[str, Any]:
    """Step 3: primary (``metrics.primary``), secondary (``metrics.secondary``, repeated) and
    guardrails (``metrics.guardrails``, repeated, each with ``margin.<key>``) among ``known``
    metric keys. A metric holds one role: a primary also ticked elsewhere keeps only that."""
    getlist = getattr(form, "getlist", None)

    def many(name: str) -> list[str]:
        values = getlist(name) if getlist else [form.get(name)]
        return [v for v in dict.fromkeys(v for v in values if isinstance(v, str) and v)]

    primary = text(form, "metrics.primary") or None
    secondary = [k for k in many("metrics.secondary") if k != primary]
    guardrails: list[dict[str, Any]] = []
    for key in many("metrics.guardrails"):
        if key == primary:
            continue
        margin_text = text(form, f"margin.{key}")
        margin: float | None = None
        if margin_text:
            try:
                margin = plain_float(margin_text)
                if not margin >= 0 or margin == float("inf"):
                    raise ValueError
            except ValueError:
                errors.add(f"margin.{key}", "a non-negative number, e.g. 0.02 for 2%")
        guardrails.append({"key": key, "margin": margin})
    secondary = [k for k in secondary if k not in {g["key"] for g in guardrails}]
    for name, keys in (
        ("metrics.primary", [primary] if primary else []),
        ("metrics.secondary", secondary),
        ("metrics.guardrails", [g["key"] for g in guardrails]),
    ):
        unknown = [k for k in keys if k not in known]
        if unknown:
            errors.add(name, "unknown metric " + ", ".join(repr(k) for k in unknown))
    return {"primary": primary, "secondary": secondary, "guardrails": guardrails}


def chosen_keys(chosen: Mapping[str, Any]) -> list[str]:
    """Every metric key of a step-3 choice, whatever its role."""
    keys = [chosen["primary"]] if chosen.get("primary") else []
    return (
        keys + list(chosen.get("secondary", [])) + [g["key"] for g in chosen.get("guardrails", [])]
    )


def new_metric(form: Mapping[str, Any]) -> dict[str, Any] | None:
    """Step 3's inline definition (``new.key`` …), or None when its key is blank."""
    values = {name: text(form, f"new.{name}") for name in NEW_METRIC_FIELDS}
    if not values["key"]:
        return None
    definition: dict[str, Any] = {
        "key": values["key"],
        "name": values["name"],
        "kind": values["kind"] or "binary",
        "event": values["event"],
        "direction": values["direction"] or "increase",
    }
    if values["denominator_event"]:
        definition["denominator_event"] = values["denominator_event"]
    if values["quantile"]:
        definition["quantile"] = values["quantile"]
    return definition


def sizing_shape(kind: str | None) -> str:
    """The calculator's metric shape for a metric kind: binary → proportion, ratio → ratio,
    the rest (count, sum, a quantile approximated by its mean) → mean."""
    if kind == MetricKind.BINARY.value:
        return "proportion"
    if kind == MetricKind.RATIO.value:
        return "ratio"
    return "mean"
