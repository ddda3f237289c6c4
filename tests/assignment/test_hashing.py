"""Bit-exact hashing against published reference values."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from splitlab.assignment import fnv1a32, gb_hash
from splitlab.assignment.engine import v2_hash
from splitlab.assignment.hashing import (
    FNV_OFFSET_BASIS,
    FNV_PRIME,
    utf16_code_units,
    v1_with_suffix,
)

# Standard 32-bit FNV-1a test vectors (Landon Curt Noll's FNV reference test suite).
FNV_REFERENCE = [
    ("", 0x811C9DC5),
    ("a", 0xE40C292C),
    ("foobar", 0xBF9CF968),
]

# The "hash" cases of GrowthBook's shared SDK test suite, verbatim:
# growthbook/growthbook packages/sdk-js/test/cases.json (commit 021bf498), as
# [seed, value, version, expected]. Note: the version of this list quoted in our issue
# brief misquotes several rows (e.g. ["foo", "ab", 2, 0.2995]); the published file is
# authoritative and is what every GrowthBook SDK is tested against.
GROWTHBOOK_HASH_CASES = [
    ("", "a", 1, 0.22),
    ("", "b", 1, 0.077),
    ("b", "a", 1, 0.946),
    ("ef", "d", 1, 0.652),
    ("asdf", "8952klfjas09ujk", 1, 0.549),
    ("", "123", 1, 0.011),
    ("", '___)((*":&', 1, 0.563),
    ("seed", "a", 2, 0.0505),
    ("seed", "b", 2, 0.2696),
    ("foo", "ab", 2, 0.2575),
    ("foo", "def", 2, 0.2019),
    ("89123klj", "8952klfjas09ujkasdf", 2, 0.124),
    ("90850943850283058242805", "123", 2, 0.7516),
    ("()**(%$##$%#$#", '___)((*":&', 2, 0.0128),
    ("abc", "def", 99, None),
]

# Our own cases: pinned regression values (the FNV core is cross-checked independently
# below against the JavaScript formulation); unknown versions give no hash.
# version 1 appends the seed, version 2 prepends it and hashes the decimal result again.
OWN_HASH_CASES = [
    ("seed", "123", 99, None),
    ("seed", "123", 0, None),
    ("exp-checkout", "user-1", 2, 0.4084),
    ("exp-checkout", "user-2", 1, 0.131),
]


@pytest.mark.parametrize(("text", "expected"), FNV_REFERENCE)
def test_fnv1a32_reference_vectors(text: str, expected: int) -> None:
    assert fnv1a32(text) == expected


@pytest.mark.parametrize(("seed", "value", "version", "expected"), GROWTHBOOK_HASH_CASES)
def test_growthbook_published_hash_cases(
    seed: str, value: str, version: int, expected: float | None
) -> None:
    assert gb_hash(seed, value, version) == expected


@pytest.mark.parametrize(("seed", "value", "version", "expected"), OWN_HASH_CASES)
def test_own_hash_cases(seed: str, value: str, version: int, expected: float | None) -> None:
    assert gb_hash(seed, value, version) == expected


def _reference_fnv(units: list[int]) -> int:
    """FNV-1a written the JavaScript SDK's way: shifts and adds instead of a multiply."""
    h = FNV_OFFSET_BASIS
    for unit in units:
        h ^= unit
        h = (h + (h << 1) + (h << 4) + (h << 7) + (h << 8) + (h << 24)) & 0xFFFFFFFF
    return h


@pytest.mark.parametrize(
    "text", ["user-1", "é", "ünïcødé-ユーザー", "😀", "a😀b𝄞", "\ud800lone", "\x00x"]
)
def test_hashes_utf16_code_units_like_javascript(text: str) -> None:
    units = list(text.encode("utf-16-le", "surrogatepass"))
    code_units = [units[i] | units[i + 1] << 8 for i in range(0, len(units), 2)]
    assert list(utf16_code_units(text)) == code_units
    assert fnv1a32(text) == _reference_fnv(code_units)


def test_astral_character_is_a_surrogate_pair() -> None:
    assert list(utf16_code_units("😀")) == [0xD83D, 0xDE00]
    state = FNV_OFFSET_BASIS
    for unit in (0xD83D, 0xDE00):
        state = ((state ^ unit) * FNV_PRIME) % 2**32
    assert fnv1a32("😀") == state
    # GrowthBook's Python SDK hashes the code point instead; we deliberately differ.
    code_point_hash = ((FNV_OFFSET_BASIS ^ ord("😀")) * FNV_PRIME) % 2**32
    assert fnv1a32("😀") != code_point_hash


FAST_PATH_VALUES = ["", "a", "user-123", "ünï", "😀x", "1234567890" * 3, "x" * 64, "y" * 65]


@pytest.mark.parametrize("value", FAST_PATH_VALUES)
def test_fast_paths_equal_definition(value: str) -> None:
    for seed in ("", "s", "exp-key", "ßeed😀", "__namespace"):
        assert v2_hash(seed, value) == gb_hash(seed, value, 2)
        assert v1_with_suffix(value, tuple(utf16_code_units(seed))) == gb_hash(seed, value, 1)


def test_deterministic_across_processes() -> None:
    values = [f"user-{i}" for i in range(50)] + ["ünï", "😀"]
    expected = [[gb_hash("exp", v, version) for v in values] for version in (1, 2)]
    code = (
        "import json, sys\n"
        "from splitlab.assignment import gb_hash\n"
        "values = json.loads(sys.stdin.read())\n"
        "print(json.dumps([[gb_hash('exp', v, ver) for v in values] for ver in (1, 2)]))\n"
    )
    for hash_seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps(values),
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        assert json.loads(out.stdout) == expected
