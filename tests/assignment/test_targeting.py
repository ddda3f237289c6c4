"""Targeting conditions: one row per operator behaviour (GrowthBook semantics)."""

from __future__ import annotations

from typing import Any

import pytest

from splitlab.assignment import eval_condition

SANTA = {"name": "santa", "bday": "1980-12-25", "father": {"age": 70}}
SANTA_CONDITION = {
    "$and": [
        {"father.age": {"$gt": 65}},
        {"$or": [{"bday": {"$regex": "-12-25$"}}, {"name": "santa"}]},
    ]
}

CASES: list[tuple[str, dict[str, Any], dict[str, Any], bool]] = [
    ("empty condition", {}, {"a": 1}, True),
    ("implicit equality", {"country": "NL"}, {"country": "NL"}, True),
    ("implicit equality fails", {"country": "NL"}, {"country": "BE"}, False),
    ("multiple types", {"s": "x", "n": 10, "f": False}, {"s": "x", "n": 10, "f": False}, True),
    ("bool is not a number", {"flag": True}, {"flag": 1}, False),
    ("null condition, missing", {"userId": None}, {}, True),
    ("null condition, zero", {"userId": None}, {"userId": 0}, False),
    ("array equality", {"tags": ["a", "b"]}, {"tags": ["a", "b"]}, True),
    ("array equality is ordered", {"tags": ["a", "b"]}, {"tags": ["b", "a"]}, False),
    ("object equality", {"o": {"k": "v"}}, {"o": {"k": "v"}}, True),
    ("object equality extra key", {"o": {"k": "v"}}, {"o": {"k": "v", "x": 1}}, False),
    ("$eq", {"job": {"$eq": "engineer"}}, {"job": "engineer"}, True),
    ("$eq fails", {"job": {"$eq": "engineer"}}, {"job": "civil engineer"}, False),
    ("$eq false vs missing", {"u": {"$eq": False}}, {}, False),
    ("$ne", {"level": {"$ne": "senior"}}, {"level": "junior"}, True),
    ("$ne fails", {"level": {"$ne": "senior"}}, {"level": "senior"}, False),
    ("$ne vs missing", {"country": {"$ne": "de"}}, {}, True),
    ("$gt/$lt pass", {"age": {"$gt": 30, "$lt": 60}}, {"age": 50}, True),
    ("$lt is strict", {"age": {"$gt": 30, "$lt": 60}}, {"age": 60}, False),
    ("$gt is strict", {"age": {"$gt": 30, "$lt": 60}}, {"age": 30}, False),
    ("$gte/$lte bounds", {"age": {"$gte": 30, "$lte": 60}}, {"age": 30}, True),
    ("$lte fails", {"age": {"$gte": 30, "$lte": 60}}, {"age": 61}, False),
    ("strings ordered", {"w": {"$gt": "alphabet", "$lt": "zebra"}}, {"w": "always"}, True),
    ("uppercase sorts first", {"w": {"$gt": "alphabet", "$lt": "zebra"}}, {"w": "AZL"}, False),
    ("number vs numeric string", {"n": {"$gt": 5, "$lt": 10}}, {"n": "8"}, True),
    ("numeric string vs number", {"n": {"$gt": "5", "$lt": "10"}}, {"n": 8}, True),
    ("missing reads as 0", {"age": {"$gt": -10, "$lt": 10, "$ne": 10}}, {}, True),
    ("incomparable", {"n": {"$gt": 5}}, {"n": "abc"}, False),
    ("$in", {"num": {"$in": [1, 2, 3]}}, {"num": 2}, True),
    ("$in fails", {"num": {"$in": [1, 2, 3]}}, {"num": 4}, False),
    ("$in needs a list", {"num": {"$in": 1}}, {"num": 1}, False),
    ("$in array overlap", {"tags": {"$in": ["a", "b"]}}, {"tags": ["d", "e", "a"]}, True),
    ("$in array no overlap", {"tags": {"$in": ["a", "b"]}}, {"tags": ["d", "e"]}, False),
    ("$in empty array", {"tags": {"$in": ["a", "b"]}}, {"tags": []}, False),
    ("$in missing", {"pets.dog.name": {"$in": ["fido"]}}, {"hello": "world"}, False),
    ("$nin", {"num": {"$nin": [1, 2, 3]}}, {"num": 4}, True),
    ("$nin fails", {"num": {"$nin": [1, 2, 3]}}, {"num": 2}, False),
    ("$nin needs a list", {"num": {"$nin": 1}}, {"num": 1}, False),
    ("$nin array overlap", {"tags": {"$nin": ["a", "b"]}}, {"tags": ["d", "b"]}, False),
    ("$nin empty array", {"tags": {"$nin": ["a", "b"]}}, {"tags": []}, True),
    ("$exists true", {"pets.dog.name": {"$exists": True}}, {"pets": {"dog": {"name": "x"}}}, True),
    ("$exists true fails", {"pets.dog.name": {"$exists": True}}, {"hello": "world"}, False),
    ("$exists false", {"pets.dog.name": {"$exists": False}}, {"hello": "world"}, True),
    (
        "$exists false fails",
        {"pets.dog.name": {"$exists": False}},
        {"pets": {"dog": {"name": "x"}}},
        False,
    ),
    ("$regex", {"ua": {"$regex": "(Mobile|Tablet)"}}, {"ua": "Android Mobile"}, True),
    ("$regex searches", {"ua": {"$regex": "Mobile"}}, {"ua": "x Mobile y"}, True),
    ("$regex fails", {"ua": {"$regex": "(Mobile|Tablet)"}}, {"ua": "Chrome Desktop"}, False),
    ("$regex invalid", {"name": {"$regex": "/???***[)"}}, {"name": "hello"}, False),
    ("$regex on number", {"n": {"$regex": "1"}}, {"n": 1}, False),
    ("dotted path", {"father.age": {"$gt": 65}}, {"father": {"age": 70}}, True),
    ("dotted path through null", {"address.state": "CA"}, {"address": None}, False),
    ("dotted path through int", {"address.state": "CA"}, {"address": 123}, False),
    ("$and/$or all true", SANTA_CONDITION, SANTA, True),
    ("$or second branch", SANTA_CONDITION, {**SANTA, "name": "barbara"}, True),
    ("$or first branch", SANTA_CONDITION, {**SANTA, "bday": "1980-12-20"}, True),
    ("$and first false", SANTA_CONDITION, {**SANTA, "father": {"age": 65}}, False),
    ("$or both false", SANTA_CONDITION, {**SANTA, "name": "b", "bday": "1980-11-25"}, False),
    ("empty $or passes", {"$or": []}, {"a": 1}, True),
    ("empty $and passes", {"$and": []}, {"a": 1}, True),
    ("$not", {"$not": {"name": "hello"}}, {"name": "world"}, True),
    ("$not fails", {"$not": {"name": "hello"}}, {"name": "hello"}, False),
    ("field $not", {"name": {"$not": {"$regex": "^hello"}}}, {"name": "world"}, True),
    ("field $not fails", {"name": {"$not": {"$regex": "^hello"}}}, {"name": "hello you"}, False),
    ("$nor", {"$nor": [{"name": "john"}, {"age": {"$lt": 30}}]}, {"name": "jim", "age": 40}, True),
    (
        "$nor fails",
        {"$nor": [{"name": "john"}, {"age": {"$lt": 30}}]},
        {"name": "jim", "age": 20},
        False,
    ),
    ("$elemMatch", {"nums": {"$elemMatch": {"$gt": 10}}}, {"nums": [0, 5, 15]}, True),
    ("$elemMatch fails", {"nums": {"$elemMatch": {"$gt": 10}}}, {"nums": [0, 5, 8]}, False),
    (
        "$elemMatch nested",
        {"hobbies": {"$elemMatch": {"name": {"$regex": "^ping"}}}},
        {"hobbies": [{"name": "bowling"}, {"name": "pingpong"}]},
        True,
    ),
    ("$size", {"tags": {"$size": 3}}, {"tags": ["a", "b", "c"]}, True),
    ("$size nested", {"tags": {"$size": {"$gt": 2}}}, {"tags": [0, 1]}, False),
    ("$size not array", {"tags": {"$size": 3}}, {"tags": "abc"}, False),
    ("$all", {"tags": {"$all": ["one", "three"]}}, {"tags": ["one", "two", "three"]}, True),
    ("$all fails", {"tags": {"$all": ["one", "three"]}}, {"tags": ["one", "two"]}, False),
    ("$type", {"a": {"$type": "string"}}, {"a": "x"}, True),
    ("$type boolean", {"a": {"$type": "number"}}, {"a": True}, False),
    ("unknown operator", {"name": {"$regx": "hello"}}, {"name": "hello"}, False),
]


@pytest.mark.parametrize(
    ("condition", "attributes", "expected"),
    [pytest.param(c, a, e, id=name) for name, c, a, e in CASES],
)
def test_eval_condition(
    condition: dict[str, Any], attributes: dict[str, Any], expected: bool
) -> None:
    assert eval_condition(condition, attributes) is expected


def test_missing_attributes_and_condition() -> None:
    assert eval_condition(None, None) is True
    assert eval_condition({"country": "NL"}, None) is False
