"""Reading the experiment page's action forms: free text, numbers, ramps, a schedule and a
traffic split — each refused with a 422 naming its field (``loc``) before anything changes.

The schedule and the traffic split become an ``ExperimentPatch`` applied by
``store.experiments.update_experiment``, which enforces what may change in each state (a live
experiment only its weights); this module only turns form text into that patch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import ValidationError as PydanticValidationError

from splitlab.domain import ExperimentPatch, ExperimentSpec
from splitlab.domain.experiments import WEIGHT_TOLERANCE
from splitlab.errors import ValidationError, from_pydantic

MAX_REASON = 2000
WEIGHT_TOLERANCE_PERCENT = WEIGHT_TOLERANCE * 100
"""How far the percentages may be from 100 in total (the store's tolerance on weights)."""

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
"""Control characters a form's free text may not hold (tabs and line breaks are fine)."""


def _invalid(field: str | list[str], message: str, msg: str) -> ValidationError:
    loc = field if isinstance(field, list) else [field]
    return ValidationError(message, details=[{"loc": loc, "msg": msg}])


def form_text(value: str | None, field: str, *, required: bool, limit: int = MAX_REASON) -> str:
    """``value`` stripped; required, at most ``limit`` characters, no control characters."""
    text = (value or "").strip()
    if required and not text:
        raise _invalid(field, f"{field} is required", "must not be empty")
    if len(text) > limit:
        raise _invalid(field, f"{field} is too long", f"at most {limit} characters")
    if _CONTROL.search(text):  # as the API refuses them (domain.limits): nobody means to type one
        raise _invalid(
            field,
            f"{field} must not contain NUL or other control characters",
            "no control characters",
        )
    return text


def number(text: str | None, field: str | list[str], *, integer: bool = False) -> float | None:
    """A finite number (a whole one when ``integer``), None when the input is empty."""
    if text is None or not text.strip():
        return None
    name = field if isinstance(field, str) else ".".join(field)
    try:
        value = int(text) if integer else float(text)
    except ValueError as exc:
        kind = "a whole number" if integer else "a number"
        raise _invalid(
            field, f"{name} must be {kind}", "an integer" if integer else "a number"
        ) from exc
    if not math.isfinite(value):  # "nan" and "inf" parse as floats
        raise _invalid(field, f"{name} must be a finite number", "a number")
    return value


def ramp(text: str | None, hold: str | None) -> list[dict[str, float]] | None:
    """``10,50,100`` → ramp steps, each held ``hold`` hours (24 when not given)."""
    text = form_text(text, "ramp", required=False, limit=200)
    if not text:
        return None
    hours = number(hold, "hold_hours")
    steps = []
    for part in text.replace(" ", "").split(","):
        percent = number(part.rstrip("%"), "ramp")
        if percent is not None:
            steps.append({"percent": percent, "hold_hours": 24.0 if hours is None else hours})
    return steps


def _moment(text: str | None, field: str, *, required: bool) -> datetime | None:
    """A ``datetime-local`` input (``2026-12-01T10:00``, read as UTC) or an ISO moment."""
    raw = form_text(text, field, required=required, limit=40)
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise _invalid(
            field, f"{field} must be a date and time like 2026-12-01T10:00", "a date and time"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def schedule_patch(start_at: str | None, end_at: str | None, *, now: datetime) -> ExperimentPatch:
    """The schedule form → a patch of ``start_at`` (required, in the future) and ``end_at``
    (optional, after ``start_at``); times without a zone are UTC."""
    start = _moment(start_at, "start_at", required=True)
    end = _moment(end_at, "end_at", required=False)
    assert start is not None  # required above
    if start <= now:
        raise _invalid("start_at", "start_at must be in the future", "in the future")
    if end is not None and end <= start:
        raise _invalid("end_at", "end_at must be later than start_at", "after start_at")
    fields: dict[str, datetime] = {"start_at": start}
    if end is not None:
        fields["end_at"] = end
    try:
        return ExperimentPatch.model_validate(fields)
    except PydanticValidationError as exc:  # a date out of the supported range
        raise from_pydantic(exc) from exc


def weights_patch(
    spec: ExperimentSpec, keys: Sequence[str], percents: Sequence[str]
) -> ExperimentPatch:
    """The traffic-split form (one percentage per variant, summing to 100) → a patch of the
    variants with only their weights changed. The form must name every variant once."""
    known = [v.key for v in spec.variants]
    if len(keys) != len(percents) or sorted(keys) != sorted(known) or len(set(keys)) != len(keys):
        raise _invalid(
            "weights",
            "the traffic split must give one percentage for each variant: " + ", ".join(known),
            "one percentage per variant",
        )
    given: dict[str, float] = {}
    for key, text in zip(keys, percents, strict=True):
        value = number(text, ["weights", key])
        if value is None:
            raise _invalid(["weights", key], f"a percentage for {key} is required", "required")
        if not 0 <= value <= 100:
            raise _invalid(
                ["weights", key], f"{key}'s share must be between 0 and 100%", "between 0 and 100"
            )
        given[key] = value
    total = sum(given.values())
    if abs(total - 100) > WEIGHT_TOLERANCE_PERCENT:
        raise _invalid(
            "weights",
            f"the variants' shares must sum to 100% (they sum to {total:g}%)",
            "sum to 100",
        )
    variants = [v.model_copy(update={"weight": given[v.key] / 100}) for v in spec.variants]
    try:
        return ExperimentPatch.model_validate({"variants": [v.model_dump() for v in variants]})
    except PydanticValidationError as exc:
        raise from_pydantic(exc) from exc
