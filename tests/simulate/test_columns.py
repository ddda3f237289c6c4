"""The simulator's column builders give the same texts as Python string formatting."""

from __future__ import annotations

import json

import numpy as np
import pytest

from splitlab.simulate import columns
from splitlab.simulate.columns import attribute_json, coded, numbered, numbered_unicode


@pytest.mark.parametrize(
    ("start", "count"), [(0, 0), (0, 1), (0, 12), (7, 200), (95, 10), (999_990, 20)]
)
def test_numbered_ids_match_string_formatting_across_digit_counts(start: int, count: int) -> None:
    assert numbered("exp-e", start, count).to_pylist() == [
        f"exp-e{i}" for i in range(start, start + count)
    ]


def test_numbered_ids_beyond_one_arrays_bytes_come_in_chunks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(columns, "MAX_ARRAY_BYTES", 40)
    ids = numbered("exp-e", 95, 30)
    assert ids.num_chunks > 1
    assert ids.to_pylist() == [f"exp-e{i}" for i in range(95, 125)]


def test_numbered_unicode_ids_are_those_of_the_arrow_column() -> None:
    ids = numbered_unicode("exp-u", 1_234)
    assert ids.dtype.kind == "U"
    assert ids.tolist() == numbered("exp-u", 0, 1_234).to_pylist()


def test_coded_columns_repeat_values_and_make_negative_codes_null() -> None:
    assert coded(["a", "b"], np.array([1, 0, -1, 1])).to_pylist() == ["b", "a", None, "b"]
    assert coded(["x"], None, 3).to_pylist() == ["x", "x", "x"]


@pytest.mark.parametrize("limit", [columns.MAX_JSON_COMBINATIONS, 1])
def test_attribute_json_is_one_object_per_row_either_way(
    limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(columns, "MAX_JSON_COMBINATIONS", limit)  # 1: the text-per-row path
    attributes = {"country": ["US", "DE", "BR"], "device": ["desktop", "mobile"]}
    rng = np.random.default_rng(3)
    codes = {"country": rng.integers(0, 3, 50), "device": rng.integers(0, 2, 50)}
    texts = attribute_json(attributes, codes, 50).to_pylist()
    assert [json.loads(text) for text in texts] == [
        {"country": attributes["country"][c], "device": attributes["device"][d]}
        for c, d in zip(codes["country"], codes["device"], strict=True)
    ]
    assert texts[0] == json.dumps(json.loads(texts[0]), separators=(",", ":"))
    assert attribute_json({}, {}, 2).to_pylist() == [None, None]
