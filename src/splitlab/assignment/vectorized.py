"""GrowthBook hashing of many unit ids at once, vectorised in numpy.

Unit ids become a matrix of UTF-16 code units with one row per character *position*
(transposed, so each step reads a contiguous row); FNV-1a then runs one position at a time
over all ids, with uint32 arithmetic wrapping mod 2^32 exactly as the scalar version.
The cost is a few numpy passes per character position, independent of the number of ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from splitlab.assignment.hashing import FNV_OFFSET_BASIS, FNV_PRIME, fnv1a32_continue

UInt32Array = npt.NDArray[np.uint32]
FloatArray = npt.NDArray[np.float64]

_PRIME = np.uint32(FNV_PRIME)
_ZERO_CHAR = np.uint32(ord("0"))
_POWERS_OF_TEN = [np.uint32(10**k) for k in range(1, 10)]


class CodeUnits:
    """Unit ids as UTF-16 code units: ``rows[j]`` holds the j-th code unit of every id."""

    __slots__ = ("count", "ids", "lengths", "min_length", "rows")

    def __init__(
        self, ids: npt.NDArray[np.str_], rows: UInt32Array, lengths: npt.NDArray[np.int64]
    ) -> None:
        self.ids = ids
        self.rows = rows
        self.lengths = lengths
        self.count = int(lengths.shape[0])
        self.min_length = int(lengths.min()) if self.count else 0

    @classmethod
    def from_ids(cls, unit_ids: Sequence[str] | npt.NDArray[Any]) -> CodeUnits:
        """Build from a numpy unicode array (fastest) or any sequence of str.

        numpy's fixed-width strings drop trailing U+0000 characters; when the ids come as
        Python strings, such ids are detected and hashed from the original text.
        """
        originals = None
        if isinstance(unit_ids, np.ndarray) and unit_ids.dtype.kind == "U":
            ids = unit_ids
        else:
            originals = unit_ids if isinstance(unit_ids, np.ndarray) else list(unit_ids)
            ids = as_unicode_array(originals)
        count = ids.shape[0]
        width = ids.dtype.itemsize // 4
        lengths = np.strings.str_len(ids).astype(np.int64)
        if count == 0 or width == 0:
            code_points = np.zeros((count, 0), np.uint32)
        else:
            code_points = ids.view(np.uint32).reshape(count, width)
        # Characters above U+FFFF become two UTF-16 code units (a surrogate pair), as in
        # JavaScript. Such ids are rare, so they are re-encoded one by one.
        special = np.flatnonzero((code_points > 0xFFFF).any(axis=1))
        if originals is not None:
            true_lengths = np.fromiter(map(len, originals), np.int64, count)
            special = np.union1d(special, np.flatnonzero(true_lengths != lengths))
        if special.size == 0:
            return cls(ids, np.ascontiguousarray(code_points.T), lengths)
        encoded = {
            int(i): _utf16_units(str(originals[i] if originals is not None else ids[i]))
            for i in special
        }
        new_width = max(width, max(units.size for units in encoded.values()))
        matrix = np.zeros((count, new_width), np.uint32)
        matrix[:, :width] = code_points
        for row, units in encoded.items():
            matrix[row, :] = 0
            matrix[row, : units.size] = units
            lengths[row] = units.size
        return cls(ids, np.ascontiguousarray(matrix.T), lengths)


def as_unicode_array(unit_ids: Sequence[str] | npt.NDArray[np.str_]) -> npt.NDArray[np.str_]:
    """A 1-D numpy unicode array of the ids (no copy when it already is one)."""
    ids = np.asarray(unit_ids)
    if ids.dtype.kind != "U":
        ids = ids.astype(np.str_) if ids.size else np.zeros(0, dtype="<U1")
    if ids.ndim != 1:
        raise ValueError("unit ids must be one-dimensional")
    return ids


def _utf16_units(text: str) -> UInt32Array:
    return np.frombuffer(text.encode("utf-16-le", "surrogatepass"), dtype="<u2").astype(np.uint32)


def _fnv_over(state: UInt32Array, units: CodeUnits) -> UInt32Array:
    """Continue FNV-1a over each id's own code units, in place on ``state``."""
    scratch = np.empty_like(state)
    for position in range(units.rows.shape[0]):
        np.bitwise_xor(state, units.rows[position], out=scratch)
        np.multiply(scratch, _PRIME, out=scratch)
        if position < units.min_length:
            state, scratch = scratch, state
        else:
            np.copyto(state, scratch, where=units.lengths > position)
    return state


def _fnv_over_then_suffix(units: CodeUnits, suffix: str) -> UInt32Array:
    """FNV-1a of ``id + suffix`` for every id."""
    state = _fnv_over(np.full(units.count, FNV_OFFSET_BASIS, np.uint32), units)
    suffix_units = _utf16_units(suffix)
    if suffix_units.size == 0:
        return state
    # FNV is sequential: once every id is consumed, the suffix is the same for all rows.
    scratch = np.empty_like(state)
    for unit in suffix_units:
        np.bitwise_xor(state, unit, out=scratch)
        np.multiply(scratch, _PRIME, out=state)
    return state


def _fnv_of_decimal(values: UInt32Array) -> UInt32Array:
    """FNV-1a of ``str(v)`` for every uint32 ``v`` (1 to 10 ASCII digits)."""
    num_digits = np.ones(values.shape, np.int8)
    for power in _POWERS_OF_TEN:
        num_digits += values >= power
    digits = np.empty((10, values.shape[0]), np.uint32)
    remaining = values.copy()
    for place in range(9, -1, -1):  # digits[place] is the place-th of 10 zero-padded digits
        digits[place] = remaining % 10
        remaining //= 10
    state = np.full(values.shape, FNV_OFFSET_BASIS, np.uint32)
    scratch = np.empty_like(state)
    for place in range(10):
        np.bitwise_xor(state, digits[place] + _ZERO_CHAR, out=scratch)
        np.multiply(scratch, _PRIME, out=scratch)
        if place == 0:
            np.copyto(state, scratch, where=num_digits == 10)
        else:
            np.copyto(state, scratch, where=num_digits >= 10 - place)
    return state


def hash_many(seed: str, units: CodeUnits, version: int) -> FloatArray | None:
    """``gb_hash(seed, id, version)`` for every id; None for an unsupported version."""
    if version == 2:
        seed_state = fnv1a32_continue(FNV_OFFSET_BASIS, seed)
        first = _fnv_over(np.full(units.count, seed_state, np.uint32), units)
        return (_fnv_of_decimal(first) % np.uint32(10000)).astype(np.float64) / 10000
    if version == 1:
        return (_fnv_over_then_suffix(units, seed) % np.uint32(1000)).astype(np.float64) / 1000
    return None
