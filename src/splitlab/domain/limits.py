"""The documented limits on what the API, YAML contracts and the CLI accept (the README lists
them), and the annotated types that enforce them.

Limits are checked on input only: a definition read back from the store is validated with
``context=STORED`` and passes even if it predates a limit, so tightening one never makes
existing experiments unreadable (the analysis re-checks what it cannot work with).
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    ModelWrapValidatorHandler,
    ValidationInfo,
    model_validator,
)

MAX_NAME = 200
"""Characters in a name (experiment, variant, metric) or an event name."""
MAX_SHORT_TEXT = 100
"""Characters in a team, owner, tag, reviewer, seed or segment name."""
MAX_TEXT = 10_000
"""Characters in free text: hypothesis, predicted outcome, description, review comment."""
MAX_NOTE = 20_000
"""Characters in a note."""
MAX_REASON = 2_000
"""Characters in the reason given for a change or transition."""
MAX_TAGS = 50
MAX_VARIANTS = 50
MAX_METRICS = 50
"""Secondary metrics, and guardrails, of one experiment (each)."""
MAX_SEGMENTS = 20
"""Pre-registered segments of one analysis plan."""
MAX_REVIEWERS = 20
MAX_JSON_DEPTH = 32
"""Nesting levels of a variant payload."""
MAX_JSON_BYTES = 64 * 1024
"""Size of a variant payload or a metric filter, as compact JSON."""
MAX_FILTER_KEYS = 50
MAX_FILTER_OPTIONS = 1_000
"""Values in one ``filter`` list (membership test)."""
MAX_WINDOW_HOURS = 24 * 3650
"""An attribution window (and its start) of at most ten years."""
MIN_DATE = datetime(1970, 1, 1, tzinfo=UTC)
MAX_DATE = datetime(2100, 1, 1, tzinfo=UTC)
"""``start_at``/``end_at`` lie in [MIN_DATE, MAX_DATE)."""
MAX_QUERY_TEXT = 200
"""Characters in a search or filter query parameter."""
MAX_INT32 = 2**31 - 1
"""Largest number an integer column of the store holds (ids, versions)."""

PROPERTY_NAME_PATTERN = r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$"
"""An event property or exposure attribute (``value_field``, filter keys, segments): letters,
digits, ``_`` and ``-``; dots reach into nested objects (``page.type``)."""
_PROPERTY_NAME = re.compile(PROPERTY_NAME_PATTERN)

_SINGLE_LINE_FORBIDDEN = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
_MULTI_LINE_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
"""Control characters (NUL included; free text may hold tabs and line breaks) and unpaired
surrogates: PostgreSQL refuses NUL in text, and no client means to send them."""

STORED: dict[str, Any] = {"stored": True}
"""Validation context for definitions read back from the store (limits are not re-checked)."""


def _stored(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get("stored"))


def _text_check(max_chars: int, *, multiline: bool) -> Any:
    forbidden = _MULTI_LINE_FORBIDDEN if multiline else _SINGLE_LINE_FORBIDDEN
    allowed = "" if multiline else " (and no line breaks)"

    def check(value: str, info: ValidationInfo) -> str:
        if _stored(info):
            return value
        if len(value) > max_chars:
            raise ValueError(f"is {len(value)} characters long; the limit is {max_chars}")
        if forbidden.search(value):
            raise ValueError(f"must not contain NUL or other control characters{allowed}")
        return value

    return AfterValidator(check)


def _schema(**keywords: Any) -> Any:
    return Field(json_schema_extra=keywords)


Name = Annotated[str, _text_check(MAX_NAME, multiline=False), _schema(maxLength=MAX_NAME)]
ShortText = Annotated[
    str, _text_check(MAX_SHORT_TEXT, multiline=False), _schema(maxLength=MAX_SHORT_TEXT)
]
LongText = Annotated[str, _text_check(MAX_TEXT, multiline=True), _schema(maxLength=MAX_TEXT)]
NoteText = Annotated[str, _text_check(MAX_NOTE, multiline=True), _schema(maxLength=MAX_NOTE)]
Reason = Annotated[str, _text_check(MAX_REASON, multiline=True), _schema(maxLength=MAX_REASON)]


def max_items(limit: int) -> Any:
    """A list of at most ``limit`` items (on input)."""

    def check(value: list[Any], info: ValidationInfo) -> list[Any]:
        if not _stored(info) and len(value) > limit:
            raise ValueError(f"has {len(value)} items; the limit is {limit}")
        return value

    return AfterValidator(check)


def property_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name an event property or exposure attribute, or None."""
    if len(name) > MAX_NAME:
        return f"is {len(name)} characters long; the limit is {MAX_NAME}"
    if not _PROPERTY_NAME.match(name):
        return (
            "must be a property name: letters, digits, _ and -, with dots between the names "
            "of nested objects (not a JSON path)"
        )
    return None


def _property_name(value: str, info: ValidationInfo) -> str:
    if not _stored(info):
        problem = property_name_problem(value)
        if problem:
            raise ValueError(problem)
    return value


PropertyName = Annotated[
    str,
    AfterValidator(_property_name),
    _schema(maxLength=MAX_NAME, pattern=PROPERTY_NAME_PATTERN),
]


def _in_range(value: datetime, info: ValidationInfo) -> datetime:
    if _stored(info):
        return value
    moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    if not MIN_DATE <= moment < MAX_DATE:
        raise ValueError(
            f"must lie between {MIN_DATE:%Y-%m-%d} and {MAX_DATE:%Y-%m-%d} "
            f"(got {value.date().isoformat()})"
        )
    return value


Moment = Annotated[
    datetime,
    AfterValidator(_in_range),
    _schema(description=f"between {MIN_DATE:%Y-%m-%d} and {MAX_DATE:%Y-%m-%d}"),
]


def json_value_problem(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why ``value`` is not a JSON document Splitlab stores, or None: nesting deeper than
    ``max_depth``, a number that is not finite, NUL or another control character in a
    string or key, or more than ``MAX_JSON_BYTES`` as JSON. Iterative: any depth is safe."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > max_depth:
                return f"is nested more than {max_depth} levels deep"
            if isinstance(item, dict):
                for key in item:
                    if not isinstance(key, str) or _SINGLE_LINE_FORBIDDEN.search(key):
                        return "has a key with NUL or another control character"
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, float):
            if not math.isfinite(item):
                return "holds a number that is not finite (NaN, Infinity or out of range)"
        elif isinstance(item, str):
            if _MULTI_LINE_FORBIDDEN.search(item):
                return "holds a string with NUL or another control character"
        elif item is not None and not isinstance(item, bool | int):
            return f"holds a {type(item).__name__}, which is not JSON"
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False))
    if size > MAX_JSON_BYTES:
        return f"is {size} characters as JSON; the limit is {MAX_JSON_BYTES}"
    return None


def _json_document(value: Any, info: ValidationInfo) -> Any:
    if not _stored(info):
        problem = json_value_problem(value)
        if problem:
            raise ValueError(problem)
    return value


JsonDocument = BeforeValidator(_json_document)
"""Checks a free-form JSON value (a variant payload) before pydantic walks it."""


def _filter(value: Any, info: ValidationInfo) -> Any:
    """A metric filter: ``{property: value or [values]}`` with scalar values."""
    if _stored(info) or not isinstance(value, dict):
        return value  # the type check reports a non-object
    if len(value) > MAX_FILTER_KEYS:
        raise ValueError(f"has {len(value)} keys; the limit is {MAX_FILTER_KEYS}")
    for key, wanted in value.items():
        problem = property_name_problem(key) if isinstance(key, str) else "is not a string"
        if problem:
            raise ValueError(f"key {str(key)[:50]!r} {problem}")
        options = wanted if isinstance(wanted, list) else [wanted]
        if len(options) > MAX_FILTER_OPTIONS:
            raise ValueError(f"{key}: {len(options)} values; the limit is {MAX_FILTER_OPTIONS}")
        if any(isinstance(option, dict | list) for option in options):
            raise ValueError(f"{key}: a value or a list of values (strings, numbers, booleans)")
    problem = json_value_problem(value, max_depth=2)
    if problem:
        raise ValueError(problem)
    return value


FilterDocument = BeforeValidator(_filter)


class ReadBack(BaseModel):
    """Mixin for output models: what the store returns is validated with ``context=STORED``
    (a definition stored before a limit existed is still shown, not refused)."""

    @model_validator(mode="wrap")
    @classmethod
    def _as_stored(
        cls, data: Any, handler: ModelWrapValidatorHandler[Any], info: ValidationInfo
    ) -> Any:
        if _stored(info) or isinstance(data, cls):
            return handler(data)
        return cls.model_validate(data, context=STORED)
