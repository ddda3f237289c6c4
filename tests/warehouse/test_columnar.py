"""The column-wise batch validation gives exactly what ``parse_item`` gives, item by item."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from splitlab.errors import SplitlabError
from splitlab.warehouse import columnar
from splitlab.warehouse.columnar import parse_batch
from splitlab.warehouse.validation import error_entry, parse_item, to_us
from tests.warehouse.conftest import START
from tests.warehouse.test_validation import EXPERIMENTS

NOW = to_us(START + timedelta(days=10))
BASE = {"experimentKey": "checkout", "userKey": "u1", "eventType": "purchase"}
VARIANTS: list[dict[str, Any]] = [
    {},
    {"variantKey": "b", "value": 3, "props": {"sku": "a"}},
    {"eventId": "e-1", "value": 2.5},
    {"eventType": "exposure", "variantKey": "b"},
    {"eventType": "exposure"},
    {"eventType": "exposure", "variantKey": "nope"},
    {"experimentKey": None, "eventId": "global-1"},
    {"experimentKey": None},
    {"experimentKey": "old"},
    {"experimentKey": "missing"},
    {"experimentKey": " checkout"},
    {"experimentId": "checkout", "variantId": "b"},
    {"experimentId": "cuped", "experimentKey": "checkout"},
    {"userKey": 42},
    {"userKey": True},
    {"userKey": ""},
    {"userKey": "  u2 "},
    {"userKey": "x" * 200},
    {"userKey": "x" * 201},
    {"userKey": "\x1fu"},
    {"userKey": "ü"},
    {"eventType": ""},
    {"eventType": None},
    {"value": True},
    {"value": "3"},
    {"value": float("nan")},
    {"value": 2**60 + 1},
    {"value": None},
    {"props": []},
    {"props": {"big": "x" * 9000}},
    {"properties": {"a": 1}},
    {"occurredAt": "2030-01-01T00:00:00"},
    {"occurredAt": (START + timedelta(days=9)).isoformat()},
    {"occurredAt": (START - timedelta(days=1)).isoformat()},
    {"occurredAt": (START - timedelta(days=1)).isoformat(), "experimentKey": "cuped"},
    {"occurredAt": NOW / 1e6},
    {"occurredAt": NOW // 1000},
    {"occurredAt": "yesterday"},
    {"occurredAt": False},
    {"eventId": 7},
    {"eventId": " "},
]


def expected(item: Any) -> tuple[str, Any]:
    try:
        return "fact", parse_item(item, lookup=EXPERIMENTS.get, now=NOW)
    except SplitlabError as error:
        return "error", (type(error), error_entry(error))


def test_every_item_gets_what_parse_item_gives_it() -> None:
    items: list[Any] = [BASE | fields for fields in VARIANTS] + [None, 3, "text", []]
    parsed = parse_batch(items, lookup=EXPERIMENTS.get, now=NOW)
    assert sorted(parsed.positions + list(parsed.errors)) == list(range(len(items)))
    got: dict[int, tuple[str, Any]] = {
        index: ("fact", fact) for index, fact in zip(parsed.positions, parsed.facts, strict=True)
    }
    got |= {i: ("error", (type(e), error_entry(e))) for i, e in parsed.errors.items()}
    for index, item in enumerate(items):
        assert got[index] == expected(item), item
    assert len(parsed.facts) > 10 and len(parsed.errors) > 10  # both paths are exercised


def test_a_uniform_batch_matches_item_by_item(monkeypatch: pytest.MonkeyPatch) -> None:
    want = [expected(item)[1] for item in ITEMS]

    def slow_path(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a plain item went through parse_item")

    monkeypatch.setattr(columnar, "parse_item", slow_path)
    parsed = parse_batch(ITEMS, lookup=EXPERIMENTS.get, now=NOW)
    assert parsed.positions == list(range(500)) and not parsed.errors
    assert parsed.facts == want
    assert parse_batch([], lookup=EXPERIMENTS.get, now=NOW) == ([], [], {})


ITEMS = [
    BASE
    | {"userKey": f"u{i}", "variantKey": "b" if i % 2 else "control", "value": i}
    | ({"eventType": "exposure"} if i % 3 == 0 else {"eventId": f"e{i}"})
    | ({"props": {"i": i}, "occurredAt": (START + timedelta(days=1)).isoformat()} if i % 5 else {})
    for i in range(500)
]
