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
from collections.abc import Callable, Mapping
from typing import Any

Condition = Mapping[str, Any]
Predicate = Callable[[Any], bool]

_MISSING_NUMBER = 0


def eval_condition(condition: Condition | None, attributes: Mapping[str, Any] | None) -> bool:
    """Whether ``attributes`` satisfy ``condition`` (an empty or missing condition passes)."""
    return compile_condition(condition)(attributes if attributes is not None else {})


def compile_condition(condition: Condition | None) -> Predicate:
    """Turn a condition into a predicate on an attributes mapping.

    Evaluating the compiled predicate is several times faster than walking the JSON on
    every call; ``CompiledExperiment`` compiles its condition once.
    """
    if not condition:
        return _always
    parts = [_compile_part(key, value) for key, value in condition.items()]
    if len(parts) == 1:
        return parts[0]
    return lambda attributes: all(part(attributes) for part in parts)


def _always(_: Any) -> bool:
    return True


def _never(_: Any) -> bool:
    return False


def _compile_part(key: str, value: Any) -> Predicate:
    if key in ("$or", "$nor", "$and"):
        subs = [compile_condition(sub) for sub in value]
        if key == "$and" or not subs:  # an empty $or or $nor passes, as in GrowthBook
            return lambda attributes: all(sub(attributes) for sub in subs)
        if key == "$or":
            return lambda attributes: any(sub(attributes) for sub in subs)
        return lambda attributes: not any(sub(attributes) for sub in subs)
    if key == "$not":
        negated = compile_condition(value)
        return lambda attributes: not negated(attributes)
    getter = _compile_path(key)
    test = _compile_value(value)
    return lambda attributes: test(getter(attributes))


def _compile_path(path: str) -> Callable[[Any], Any]:
    if "." not in path:

        def get_one(attributes: Any) -> Any:
            if type(attributes) is dict or isinstance(attributes, Mapping):
                return attributes.get(path)
            return None

        return get_one
    return lambda attributes: get_path(attributes, path)


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


def _compile_value(condition_value: Any) -> Predicate:
    """A predicate on one attribute value: an operator object, or strict equality."""
    if (
        isinstance(condition_value, Mapping)
        and condition_value
        and _is_operator_object(condition_value)
    ):
        tests = [_compile_operator(op, arg) for op, arg in condition_value.items()]
        if len(tests) == 1:
            return tests[0]
        return lambda value: all(test(value) for test in tests)
    if isinstance(condition_value, str):
        return lambda value: isinstance(value, str) and value == condition_value
    return lambda value: json_equal(condition_value, value)


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


_COMPARISONS: dict[str, Callable[[int], bool]] = {
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


def _compile_operator(operator: str, argument: Any) -> Predicate:
    if operator in ("$eq", "$ne"):
        if operator == "$eq":
            return lambda value: _loosely_equal(value, argument)
        return lambda value: not _loosely_equal(value, argument)
    comparison = _COMPARISONS.get(operator)
    if comparison is not None:

        def compare(value: Any) -> bool:
            try:
                return bool(comparison(_compare(value, argument)))
            except (TypeError, ValueError):
                return False

        return compare
    if operator in ("$in", "$nin"):
        if not isinstance(argument, list):
            return _never
        strings = frozenset(c for c in argument if isinstance(c, str))

        def is_in(value: Any) -> bool:
            if isinstance(value, str):
                return value in strings
            return _is_in(argument, value)

        if operator == "$in":
            return is_in
        return lambda value: not is_in(value)
    if operator == "$exists":
        if argument:
            return lambda value: value is not None
        return lambda value: value is None
    if operator == "$regex":
        regex = _compiled_regex(argument) if isinstance(argument, str) else None
        if regex is None:
            return _never
        return lambda value: isinstance(value, str) and regex.search(value) is not None
    if operator == "$not":
        negated = _compile_value(argument)
        return lambda value: not negated(value)
    if operator == "$type":
        return lambda value: _json_type(value) == argument
    if operator == "$size":
        size_test = _compile_value(argument)
        return lambda value: isinstance(value, list | tuple) and size_test(len(value))
    if operator == "$elemMatch":
        item_test = (
            _compile_value(argument)
            if _is_operator_object(argument)
            else compile_condition(argument)
        )
        return lambda value: (
            isinstance(value, list | tuple) and any(item_test(item) for item in value)
        )
    if operator == "$all":
        if not isinstance(argument, list):
            return _never
        required = [_compile_value(cond) for cond in argument]
        return lambda value: (
            isinstance(value, list | tuple)
            and all(any(test(item) for item in value) for test in required)
        )
    return _never
