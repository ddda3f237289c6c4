"""Validation of one ``/api/track``-shaped item into a ``Fact``: pure, no I/O.

The payload is the one other tools already send::

    {"experimentId"|"experimentKey", "variantId"|"variantKey", "userKey", "eventType",
     "props", "value"?, "eventId"?, "occurredAt"?}

``eventType: "exposure"`` is an exposure, any other name a metric event. Every rule raises
``ValidationError`` (422) or, for an experiment that is not running, ``ConflictError`` (409),
with ``details=[{"loc": [field], "msg": ...}]`` naming the field as the client spelled it.

The limits below are the ones every path enforces (``/api/track``, the column-wise
``/api/events`` path in ``columnar``, the bulk importer's SQL): an item that passes them can be
stored by every backend, so one client's item can never fail another client's write. They
are listed in the README ("Limits of an item").
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from splitlab.domain.summary import ExperimentSummary
from splitlab.errors import ConflictError, SplitlabError, ValidationError
from splitlab.warehouse.facts import Fact, Kind, derive_id

EXPOSURE = "exposure"
MAX_PROPS_BYTES = 8 * 1024
"""``props`` serialised as compact JSON (UTF-8)."""
MAX_PROPS_DEPTH = 32
"""Nesting of ``props``: the object itself is level 1, ``{"a": {"b": 1}}`` is 2."""
MAX_FUTURE = timedelta(minutes=5)
CLOCK_SKEW = timedelta(minutes=5)
"""Exposures may be this much earlier than the recorded start (client clocks drift)."""
MAX_TEXT = 200
"""Characters in a key: experiment, variant, user, eventType, eventId (after trimming)."""
MAX_ABS_VALUE = 1e15
"""``|value|`` at most this: integers are exact in a double, and Σy² over billions of
users stays finite on every backend."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_TIME_US = 0
"""``occurredAt`` no earlier than the epoch, 1970-01-01T00:00:00Z."""
EPOCH_MS_FROM = 1e11
"""A numeric ``occurredAt`` at least this large is epoch milliseconds, below it seconds."""
MAX_EPOCH_NUMBER = 1e14
"""A numeric ``occurredAt`` above this (year 5138 in milliseconds) is refused before any
arithmetic on it (the usual "future" limit would refuse it anyway)."""
MICROSECOND = timedelta(microseconds=1)
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
"""Control characters (Unicode Cc, NUL included) and unpaired surrogates: refused in keys
(PostgreSQL text cannot hold NUL; U+001F separates the parts of derived ids)."""
CONTROL_SQL = "[\\x00-\\x1f\\x7f-\\x9f]"
"""``CONTROL`` as an RE2 pattern (pyarrow, DuckDB), written with escapes: no raw NUL in SQL."""
WHITESPACE = "".join(chr(code) for code in range(0x110000) if chr(code).isspace())
"""What ``str.strip()`` removes around a key (Unicode whitespace plus the ASCII separators)."""
ESCAPED_NUL = re.compile(rb"(?:^|[^\\])(?:\\\\)*\\u0000")
"""A ``\\u0000`` escape in orjson output (not a literal backslash followed by ``u0000``)."""

Lookup = Callable[[str], ExperimentSummary | None]


def _bad(field: str, message: str) -> ValidationError:
    return ValidationError(f"{field}: {message}", details=[{"loc": [field], "msg": message}])


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
            raise _bad(field, "is required")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _bad(field, f"must be a string, got {type(value).__name__}")
    text = str(value).strip()
    if not text:
        raise _bad(field, "must not be empty")
    if len(text) > MAX_TEXT:
        raise _bad(field, f"is longer than {MAX_TEXT} characters")
    if not text.isprintable() and CONTROL.search(text):  # isprintable: the cheap common case
        raise _bad(field, "must not contain control characters (such as NUL)")
    return text


def clean_key(value: str) -> bool:
    """Whether ``value`` (a key as sent) is one ``parse_item`` would keep: safe to look up in
    the app store (PostgreSQL refuses NUL even in a query parameter)."""
    text = value.strip()
    return 0 < len(text) <= MAX_TEXT and (text.isprintable() or not CONTROL.search(text))


def parse_timestamp(field: str, value: Any) -> int:
    """ISO 8601 text (naive = UTC) or epoch seconds / milliseconds → microseconds."""
    if isinstance(value, bool):
        raise _bad(field, "must be an ISO 8601 timestamp or epoch seconds/milliseconds")
    if isinstance(value, int | float):
        # compare before any arithmetic: -1e30 or a 400-digit int must not overflow
        if isinstance(value, float) and not math.isfinite(value):
            raise _bad(field, "must be a finite number")
        if value < 0:
            raise _bad(field, TOO_EARLY)
        if value > MAX_EPOCH_NUMBER:
            raise _bad(field, TOO_LATE)
        seconds = value / 1000 if value >= EPOCH_MS_FROM else value
        return int(seconds * 1_000_000)
    if isinstance(value, str):
        try:
            return to_us(datetime.fromisoformat(value))
        except ValueError:
            pass
    raise _bad(field, "must be an ISO 8601 timestamp or epoch seconds/milliseconds")


def _value(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad("value", f"must be a number, got {type(value).__name__}")
    if not -MAX_ABS_VALUE <= value <= MAX_ABS_VALUE:  # NaN fails it too; ints compare exactly
        if isinstance(value, float) and not math.isfinite(value):
            raise _bad("value", "must be a finite number (not NaN or infinity)")
        raise _bad("value", f"must be between -{MAX_ABS_VALUE:.0e} and {MAX_ABS_VALUE:.0e}")
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
        raise _bad(field, f"must be a JSON object, got {type(value).__name__}")
    try:
        text = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError) as exc:
        if _depth(value) > MAX_PROPS_DEPTH:  # orjson stops at 255 levels
            raise _bad(field, f"nests deeper than {MAX_PROPS_DEPTH} levels") from exc
        raise _bad(field, f"is not serialisable as JSON: {exc}") from exc
    if len(text) > MAX_PROPS_BYTES:
        raise _bad(field, f"is {len(text)} bytes; the limit is {MAX_PROPS_BYTES} bytes")
    json = text.decode()
    # cheap tests on the text first; the exact checks only when they cannot rule a problem out
    if "\\u0000" in json and ESCAPED_NUL.search(text):
        raise _bad(field, "must not contain NUL characters (\\u0000)")
    if (
        len(json) > 2 * MAX_PROPS_DEPTH  # each level takes two brackets at least
        and json.count("{") + json.count("[") > MAX_PROPS_DEPTH
        and _depth(value) > MAX_PROPS_DEPTH
    ):
        raise _bad(field, f"nests deeper than {MAX_PROPS_DEPTH} levels")
    return json


TOO_EARLY = "is before 1970-01-01T00:00:00Z"
TOO_LATE = "is more than 5 minutes in the future"


def _experiment(field: str, key: str, lookup: Lookup) -> ExperimentSummary:
    summary = lookup(key)
    if summary is None:
        raise _bad(field, f"unknown experiment {key!r}")
    if not summary.accepting:
        raise ConflictError(
            f"{field}: experiment {key!r} is {summary.status}, not running; "
            "it does not accept exposures or events",
            details=[{"loc": [field], "msg": f"experiment is {summary.status}, not running"}],
        )
    return summary


def parse_item(item: Any, *, lookup: Lookup, now: int, source: str = "api") -> Fact:
    """Validate one item (a decoded JSON object) into a ``Fact``, or raise naming the field.

    ``now`` is the server time in epoch microseconds (one reading per request).
    """
    if not isinstance(item, dict):
        raise _bad("(item)", f"must be a JSON object, got {type(item).__name__}")
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
        raise _bad(exp_field, "is required for an event without an eventId")
    if not is_exposure and variant_key is not None and experiment_key is None:
        raise _bad(exp_field, f"is required when {var_field} is given")
    value = _value(item.get("value"))
    props_field, props_raw = _pick(item, "properties", "props")
    properties = properties_json(props_field, props_raw)
    raw_time = item.get("occurredAt")
    occurred = now if raw_time is None else parse_timestamp("occurredAt", raw_time)
    if occurred - now > MAX_FUTURE // MICROSECOND:
        raise _bad("occurredAt", TOO_LATE)
    if occurred < MIN_TIME_US:
        raise _bad("occurredAt", TOO_EARLY)

    if experiment_key is not None:
        summary = _experiment(exp_field, experiment_key, lookup)
        if variant_key is not None and variant_key not in summary.variants:
            known = ", ".join(sorted(summary.variants))
            raise _bad(
                var_field,
                f"{variant_key!r} is not a variant of experiment {experiment_key!r} "
                f"(its variants: {known})",
            )
        if summary.start_at is not None:
            earliest = summary.start_at - (CLOCK_SKEW if is_exposure else summary.pre_period)
            if occurred < to_us(earliest):
                what = "start" if is_exposure else "start minus its pre-period"
                raise _bad(
                    "occurredAt",
                    f"is before the experiment's {what} ({earliest.isoformat()})",
                )

    if is_exposure:
        assert experiment_key is not None and variant_key is not None
        key = derive_id(experiment_key, unit_id)
        event_id = client_id or derive_id(experiment_key, unit_id, EXPOSURE)
        kind = Kind.EXPOSURE
    else:
        event_id = client_id or derive_id(experiment_key or "", unit_id, event_type)
        key = event_id
        kind = Kind.EVENT
    return Fact(
        kind,
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
