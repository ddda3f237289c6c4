"""Targeting conditions on unit attributes, with GrowthBook's (MongoDB-like) semantics.

A condition is a JSON object. Keys are dotted attribute paths (``"father.age"``) or the
logical operators ``$and``, ``$or``, ``$nor`` and ``$not``. A path maps either to a plain
JSON value (strict equality) or to an operator object: ``$eq $ne $gt $gte $lt $lte $in
$nin $exists $regex $not $elemMatch $size $all $type``. Unknown operators never match.

Semantics kept from GrowthBook's SDKs so that a condition evaluates the same everywhere:
missing attributes read as null; ordering operators compare a number with a string by
converting the string to a number, and null with a number as 0; ``$in``/``$nin`` on an
array attribute test for any overlap; ``$regex`` uses ``re.search``; an empty ``$or``
passes; an invalid regular expression or incomparable pair does not match.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

Condition = Mapping[str, Any]

_MISSING_NUMBER = 0


def eval_condition(condition: Condition | None, attributes: Mapping[str, Any] | None) -> bool:
    """Whether ``attributes`` satisfy ``condition`` (an empty or missing condition passes)."""
    if not condition:
        return True
    return _eval(condition, attributes or {})


def _eval(condition: Condition, attributes: Any) -> bool:
    for key, value in condition.items():
        if key == "$or":
            if not _any_of(value, attributes):
                return False
        elif key == "$nor":
            if value and _any_of(value, attributes):
                return False
        elif key == "$and":
            if not all(_eval(sub, attributes) for sub in value):
                return False
        elif key == "$not":
            if _eval(value, attributes):
                return False
        elif not _eval_value(value, get_path(attributes, key)):
            return False
    return True


def _any_of(conditions: list[Condition], attributes: Any) -> bool:
    if not conditions:
        return True
    return any(_eval(sub, attributes) for sub in conditions)


def get_path(attributes: Any, path: str) -> Any:
    """The value at a dotted ``path`` in nested mappings, or None when any step is missing."""
    current = attributes
    for segment in path.split("."):
        if isinstance(current, Mapping) and segment in current:
            current = current[segment]
        else:
            return None
    return current


def _is_operator_object(value: Any) -> bool:
    return isinstance(value, Mapping) and all(str(k).startswith("$") for k in value)


def _eval_value(condition_value: Any, attribute: Any) -> bool:
    if (
        isinstance(condition_value, Mapping)
        and condition_value
        and _is_operator_object(condition_value)
    ):
        return all(_eval_operator(op, attribute, arg) for op, arg in condition_value.items())
    return json_equal(condition_value, attribute)


def json_equal(a: Any, b: Any) -> bool:
    """Deep equality of JSON values that, unlike ``==``, keeps booleans apart from numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple | Mapping) or isinstance(b, list | tuple | Mapping):
        return False
    return bool(a == b)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _compare(left: Any, right: Any) -> int:
    """-1, 0 or 1; raises TypeError/ValueError for incomparable values."""
    if _is_number(left) and not _is_number(right):
        right = _MISSING_NUMBER if right is None else float(right)
    elif _is_number(right) and not _is_number(left):
        left = _MISSING_NUMBER if left is None else float(left)
    if left > right:
        return 1
    if left < right:
        return -1
    return 0


def _loosely_equal(attribute: Any, argument: Any) -> bool:
    """``$eq``: numeric when exactly one side is a number (``"8"`` equals 8), else strict."""
    if _is_number(attribute) != _is_number(argument) and not (
        isinstance(attribute, bool) or isinstance(argument, bool)
    ):
        try:
            return _compare(attribute, argument) == 0
        except (TypeError, ValueError):
            return False
    return json_equal(attribute, argument)


_COMPARISONS = {
    "$eq": lambda c: c == 0,
    "$ne": lambda c: c != 0,
    "$lt": lambda c: c < 0,
    "$lte": lambda c: c <= 0,
    "$gt": lambda c: c > 0,
    "$gte": lambda c: c >= 0,
}


@functools.lru_cache(maxsize=1024)
def _compiled_regex(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _is_in(candidates: Any, attribute: Any) -> bool:
    if isinstance(attribute, list | tuple):
        return any(json_equal(item, c) for item in attribute for c in candidates)
    return any(json_equal(attribute, c) for c in candidates)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return "unknown"


def _eval_operator(operator: str, attribute: Any, argument: Any) -> bool:
    comparison = _COMPARISONS.get(operator)
    if comparison is not None:
        if operator in ("$eq", "$ne"):
            equal = _loosely_equal(attribute, argument)
            return equal if operator == "$eq" else not equal
        try:
            return bool(comparison(_compare(attribute, argument)))
        except (TypeError, ValueError):
            return False
    if operator == "$in":
        return isinstance(argument, list) and _is_in(argument, attribute)
    if operator == "$nin":
        return isinstance(argument, list) and not _is_in(argument, attribute)
    if operator == "$exists":
        return attribute is not None if argument else attribute is None
    if operator == "$regex":
        regex = _compiled_regex(argument) if isinstance(argument, str) else None
        return regex is not None and isinstance(attribute, str) and bool(regex.search(attribute))
    if operator == "$not":
        return not _eval_value(argument, attribute)
    if operator == "$type":
        return _json_type(attribute) == argument
    if operator == "$size":
        return isinstance(attribute, list | tuple) and _eval_value(argument, len(attribute))
    if operator == "$elemMatch":
        return isinstance(attribute, list | tuple) and any(
            _eval_value(argument, item) if _is_operator_object(argument) else _eval(argument, item)
            for item in attribute
        )
    if operator == "$all":
        return isinstance(attribute, list | tuple) and all(
            any(_eval_value(cond, item) for item in attribute) for cond in argument
        )
    return False
