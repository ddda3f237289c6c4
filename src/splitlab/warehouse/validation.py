"""Validation of one ``/api/track``-shaped item into a ``Fact``: pure, no I/O.

The payload is the one other tools already send::

    {"experimentId"|"experimentKey", "variantId"|"variantKey", "userKey", "eventType",
     "props", "value"?, "eventId"?, "occurredAt"?}

``eventType: "exposure"`` is an exposure, any other name a metric event. Every rule raises
``ValidationError`` (422) or, for an experiment that is not running, ``ConflictError`` (409),
with ``details=[{"loc": [field], "msg": ...}]`` naming the field as the client spelled it.

The rules, their limits and messages come from ``rules.RULES``, which every path enforces
(``/api/track``, the column-wise ``/api/events`` path in ``columnar``, the bulk importer's
SQL): an item that passes them can be stored by every backend, so one client's item can
never fail another client's write. They are listed in the README ("Limits of an item").
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from splitlab.domain.summary import ExperimentSummary
from splitlab.errors import SplitlabError, ValidationError
from splitlab.ids import EXPOSURE, fact_key
from splitlab.warehouse.facts import Fact, Kind
from splitlab.warehouse.rules import (
    CLOCK_SKEW,
    CONTROL,
    EPOCH_MS_FROM,
    MAX_ABS_VALUE,
    MAX_EPOCH_NUMBER,
    MAX_FUTURE,
    MAX_PROPS_BYTES,
    MAX_PROPS_DEPTH,
    MAX_TEXT,
    TIME_TEXT,
    Applies,
    Check,
    key_rule,
    rule,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_TIME_US = 0
"""``occurredAt`` no earlier than the epoch, 1970-01-01T00:00:00Z."""
MICROSECOND = timedelta(microseconds=1)
ESCAPED_NUL = re.compile(rb"(?:^|[^\\])(?:\\\\)*\\u0000")
"""A ``\\u0000`` escape in orjson output (not a literal backslash followed by ``u0000``)."""

Lookup = Callable[[str], ExperimentSummary | None]


_REQUIRED, _KEY_TYPE, _EMPTY, _TOO_LONG, _KEY_CONTROL = (
    key_rule(check)
    for check in (Check.REQUIRED, Check.TYPE, Check.NOT_EMPTY, Check.MAX_LENGTH, Check.NO_CONTROL)
)
_NEEDS_EVENT_ID = rule("experimentKey", Check.NEEDS_EVENT_ID, Applies.EVENT)
_NEEDS_EXPERIMENT = rule("experimentKey", Check.NEEDS_EXPERIMENT, Applies.EVENT)
_VALUE_TYPE, _VALUE_FINITE, _VALUE_RANGE = (
    rule("value", check) for check in (Check.TYPE, Check.FINITE, Check.RANGE)
)
_PROPS_TYPE, _PROPS_JSON, _PROPS_BYTES, _PROPS_NUL, _PROPS_DEPTH = (
    rule("props", check)
    for check in (Check.TYPE, Check.JSON, Check.MAX_BYTES, Check.NO_NUL, Check.MAX_DEPTH)
)
_TIME_TYPE, _TIME_FINITE, _TOO_EARLY, _TOO_LATE = (
    rule("occurredAt", check)
    for check in (Check.TYPE, Check.FINITE, Check.NOT_BEFORE, Check.NOT_AFTER)
)
_UNKNOWN = rule("experimentKey", Check.KNOWN_EXPERIMENT)
_NOT_RUNNING = rule("experimentKey", Check.ACCEPTING)
_UNKNOWN_VARIANT = rule("variantKey", Check.KNOWN_VARIANT)
_EXPOSURE_START = rule("occurredAt", Check.AFTER_START, Applies.EXPOSURE)
_EVENT_START = rule("occurredAt", Check.AFTER_START, Applies.EVENT)
TOO_EARLY, TOO_LATE = _TOO_EARLY.message, _TOO_LATE.message


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // MICROSECOND


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def now_us() -> int:
    return to_us(datetime.now(UTC))


def _pick(item: Mapping[str, Any], *names: str) -> tuple[str, Any]:
    """The first of ``names`` present in ``item`` (and its value); the first name otherwise."""
    for name in names:
        value = item.get(name)
        if value is not None:
            return name, value
    return names[-1], None


def _text(field: str, value: Any, *, required: bool) -> str | None:
    if value is None:
        if required:
            raise _REQUIRED.error(field)
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _KEY_TYPE.error(field, f"got {type(value).__name__}")
    text = str(value).strip()
    if not text:
        raise _EMPTY.error(field)
    if len(text) > MAX_TEXT:
        raise _TOO_LONG.error(field)
    if not text.isprintable() and CONTROL.search(text):  # isprintable: the cheap common case
        raise _KEY_CONTROL.error(field)
    return text


def clean_key(value: str) -> bool:
    """Whether ``value`` (a key as sent) is one ``parse_item`` would keep: safe to look up in
    the app store (PostgreSQL refuses NUL even in a query parameter)."""
    text = value.strip()
    return 0 < len(text) <= MAX_TEXT and (text.isprintable() or not CONTROL.search(text))


def parse_timestamp(field: str, value: Any) -> int:
    """ISO 8601 text (``rules.TIME_TEXT``, naive = UTC) or epoch seconds / milliseconds →
    microseconds."""
    if isinstance(value, bool):
        raise _TIME_TYPE.error(field, "got bool")
    if isinstance(value, int | float):
        # compare before any arithmetic: -1e30 or a 400-digit int must not overflow
        if isinstance(value, float) and not math.isfinite(value):
            raise _TIME_FINITE.error(field)
        if value < 0:
            raise _TOO_EARLY.error(field)
        if value > MAX_EPOCH_NUMBER:
            raise _TOO_LATE.error(field)
        seconds = value / 1000 if value >= EPOCH_MS_FROM else value
        return int(seconds * 1_000_000)
    if isinstance(value, str) and TIME_TEXT.fullmatch(value):
        try:
            return to_us(datetime.fromisoformat(value))
        except ValueError:
            pass
    raise _TIME_TYPE.error(field)


def _value(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _VALUE_TYPE.error(None, f"got {type(value).__name__}")
    if not -MAX_ABS_VALUE <= value <= MAX_ABS_VALUE:  # NaN fails it too; ints compare exactly
        if isinstance(value, float) and not math.isfinite(value):
            raise _VALUE_FINITE.error()
        raise _VALUE_RANGE.error()
    return float(value)


def _depth(value: Any) -> int:
    """How deeply ``value`` (decoded JSON) nests, without recursion (``{}`` is 1)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return deepest


def properties_json(field: str, value: Any) -> str:
    """``props`` as compact JSON text, or raise naming ``field``: a JSON object of at most
    ``MAX_PROPS_BYTES``, ``MAX_PROPS_DEPTH`` levels and no NUL in any string or key."""
    if value is None:
        return "{}"
    if not isinstance(value, dict):
        raise _PROPS_TYPE.error(field, f"got {type(value).__name__}")
    try:
        text = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError) as exc:
        if _depth(value) > MAX_PROPS_DEPTH:  # orjson stops at 255 levels
            raise _PROPS_DEPTH.error(field) from exc
        raise _PROPS_JSON.error(field, str(exc)) from exc
    if len(text) > MAX_PROPS_BYTES:
        raise _PROPS_BYTES.error(field, f"{len(text)} bytes")
    json = text.decode()
    # cheap tests on the text first; the exact checks only when they cannot rule a problem out
    if "\\u0000" in json and ESCAPED_NUL.search(text):
        raise _PROPS_NUL.error(field)
    if (
        len(json) > 2 * MAX_PROPS_DEPTH  # each level takes two brackets at least
        and json.count("{") + json.count("[") > MAX_PROPS_DEPTH
        and _depth(value) > MAX_PROPS_DEPTH
    ):
        raise _PROPS_DEPTH.error(field)
    return json


def _experiment(field: str, key: str, lookup: Lookup) -> ExperimentSummary:
    summary = lookup(key)
    if summary is None:
        raise _UNKNOWN.error(field, repr(key))
    if not summary.accepting:
        raise _NOT_RUNNING.error(
            field, f"{key!r} is {summary.status}; it does not accept exposures or events"
        )
    return summary


def parse_item(item: Any, *, lookup: Lookup, now: int, source: str = "api") -> Fact:
    """Validate one item (a decoded JSON object) into a ``Fact``, or raise naming the field.

    ``now`` is the server time in epoch microseconds (one reading per request).
    """
    if not isinstance(item, dict):
        message = f"must be a JSON object, got {type(item).__name__}"
        raise ValidationError(f"(item): {message}", details=[{"loc": ["(item)"], "msg": message}])
    event_type = _text("eventType", item.get("eventType"), required=True)
    assert event_type is not None
    is_exposure = event_type == EXPOSURE
    exp_field, exp_raw = _pick(item, "experimentId", "experimentKey")
    var_field, var_raw = _pick(item, "variantId", "variantKey")
    experiment_key = _text(exp_field, exp_raw, required=is_exposure)
    variant_key = _text(var_field, var_raw, required=is_exposure)
    unit_id = _text("userKey", item.get("userKey"), required=True)
    assert unit_id is not None
    client_id = _text("eventId", item.get("eventId"), required=False)
    if experiment_key is None and client_id is None:
        raise _NEEDS_EVENT_ID.error(exp_field)
    if not is_exposure and variant_key is not None and experiment_key is None:
        raise _NEEDS_EXPERIMENT.error(exp_field, f"{var_field} is {variant_key!r}")
    value = _value(item.get("value"))
    props_field, props_raw = _pick(item, "properties", "props")
    properties = properties_json(props_field, props_raw)
    raw_time = item.get("occurredAt")
    occurred = now if raw_time is None else parse_timestamp("occurredAt", raw_time)
    if occurred - now > MAX_FUTURE // MICROSECOND:
        raise _TOO_LATE.error()
    if occurred < MIN_TIME_US:
        raise _TOO_EARLY.error()

    if experiment_key is not None:
        summary = _experiment(exp_field, experiment_key, lookup)
        if variant_key is not None and variant_key not in summary.variants:
            known = ", ".join(sorted(summary.variants))
            raise _UNKNOWN_VARIANT.error(
                var_field, f"{variant_key!r}; the variants of {experiment_key!r}: {known}"
            )
        if summary.start_at is not None:
            earliest = summary.start_at - (CLOCK_SKEW if is_exposure else summary.pre_period)
            if occurred < to_us(earliest):
                late = _EXPOSURE_START if is_exposure else _EVENT_START
                raise late.error(None, earliest.isoformat())

    key, event_id = fact_key(experiment_key, unit_id, event_type, client_id)
    return Fact(
        Kind.EXPOSURE if is_exposure else Kind.EVENT,
        key,
        event_id,
        experiment_key,
        variant_key,
        unit_id,
        event_type,
        value,
        occurred,
        properties,
        source,
    )


def error_entry(error: SplitlabError) -> dict[str, Any]:
    """The ``error`` object of a rejected item in a batch response."""
    details = error.details if isinstance(error.details, list) else []
    field = details[0]["loc"][0] if details and details[0].get("loc") else None
    return {"code": error.code, "status": error.status, "field": field, "message": error.message}
