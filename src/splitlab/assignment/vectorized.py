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
    """Unit ids as UTF-16 code units, stored by position: ``columns[j, i]`` is the j-th
    code unit of id i (zero-padded), in the narrowest unsigned dtype that holds them;
    ``lengths[i]`` is the number of code units of id i."""

    __slots__ = ("columns", "count", "ids", "lengths")

    def __init__(
        self, ids: npt.NDArray[np.str_], matrix: UInt32Array, lengths: npt.NDArray[np.int64]
    ) -> None:
        self.ids = ids
        self.lengths = lengths
        self.count = int(lengths.shape[0])
        self.columns = _by_position(matrix)

    @classmethod
    def from_ids(cls, unit_ids: Sequence[str] | npt.NDArray[Any]) -> CodeUnits:
        """Build from a numpy unicode array (fastest, no copy) or any sequence of str.

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
            # numpy stores each id as fixed-width UCS-4: view it as a matrix, no copy.
            code_points = np.ascontiguousarray(ids).view(np.uint32).reshape(count, width)
        special = np.zeros(0, np.int64)
        if code_points.size and code_points.max() > 0xFFFF:
            special = np.flatnonzero((code_points > 0xFFFF).any(axis=1))
        if originals is not None:
            true_lengths = np.fromiter(map(len, originals), np.int64, count)
            special = np.union1d(special, np.flatnonzero(true_lengths != lengths))
        if special.size == 0:
            return cls(ids, code_points, lengths)
        # Characters above U+FFFF become two UTF-16 code units (a surrogate pair), as in
        # JavaScript. Such ids are rare, so they are re-encoded one by one.
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
        return cls(ids, matrix, lengths)


def as_unicode_array(unit_ids: Sequence[str] | npt.NDArray[Any]) -> npt.NDArray[np.str_]:
    """A 1-D numpy unicode array of the ids (no copy when it already is one)."""
    ids = np.asarray(unit_ids)
    if ids.dtype.kind != "U":
        ids = ids.astype(np.str_) if ids.size else np.zeros(0, dtype="<U1")
    if ids.ndim != 1:
        raise ValueError("unit ids must be one-dimensional")
    return ids


def _by_position(matrix: UInt32Array) -> npt.NDArray[np.unsignedinteger[Any]]:
    """The transpose of ``matrix`` in its narrowest dtype, copied block by block (a plain
    transposing copy of a large uint32 matrix is several times slower)."""
    top = int(matrix.max()) if matrix.size else 0
    dtype = np.uint8 if top <= 0xFF else np.uint16  # code units never exceed 0xFFFF
    narrow = matrix.astype(dtype)
    columns = np.empty(matrix.shape[::-1], dtype)
    for start in range(0, matrix.shape[0], _TRANSPOSE_BLOCK):
        block = slice(start, start + _TRANSPOSE_BLOCK)
        columns[:, block] = narrow[block].T
    return columns


def _utf16_units(text: str) -> UInt32Array:
    return np.frombuffer(text.encode("utf-16-le", "surrogatepass"), dtype="<u2").astype(np.uint32)


# Work on blocks of ids small enough for every temporary to stay in the CPU cache.
_BLOCK = 1 << 14
_TRANSPOSE_BLOCK = 1 << 12


def _fnv_block(
    state: UInt32Array,
    columns: npt.NDArray[np.unsignedinteger[Any]],
    lengths: npt.NDArray[np.int64],
) -> UInt32Array:
    """Continue FNV-1a over each id's own code units (one block of ids)."""
    min_length = int(lengths.min())
    scratch = np.empty_like(state)
    for position in range(columns.shape[0]):
        np.bitwise_xor(state, columns[position], out=scratch)
        np.multiply(scratch, _PRIME, out=scratch)
        if position < min_length:
            state, scratch = scratch, state
        else:
            np.copyto(state, scratch, where=lengths > position)
    return state


def _fnv_of_decimal_masked(values: UInt32Array) -> UInt32Array:
    """FNV-1a of ``str(v)`` for every uint32 ``v`` — general, digit by digit."""
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
        np.copyto(state, scratch, where=num_digits >= 10 - place)
    return state


def _build_leading_digits_table() -> UInt32Array:
    """FNV state after ``str(p)`` for every p = v // 10**6 of a uint32 v (0 maps to basis)."""
    table = np.empty(2**32 // _SIX_DIGITS + 1, np.uint32)
    for prefix in range(table.size):
        table[prefix] = fnv1a32_continue(FNV_OFFSET_BASIS, str(prefix)) if prefix else 0
    table[0] = FNV_OFFSET_BASIS
    return table


_SIX_DIGITS = 10**6
_LEADING_DIGITS_STATE = _build_leading_digits_table()
_DIV10_MAGIC = np.uint64(0xCCCCCCCD)  # floor(r / 10) == (r * magic) >> 35 for r < 2**32
_SHIFT35 = np.uint64(35)


def _fnv_of_decimal(values: UInt32Array) -> UInt32Array:
    """FNV-1a of ``str(v)`` for every uint32 ``v`` (1 to 10 ASCII digits).

    Numbers of 7 or more digits (all but 1 in 4,000 of uniform uint32s) are split into
    leading digits, whose FNV state comes from a 4,296-entry table, and exactly six
    trailing digits; the few shorter numbers take the general digit-by-digit path.
    """
    leading = values // np.uint32(_SIX_DIGITS)
    state = _LEADING_DIGITS_STATE[leading]
    trailing = (values - leading * np.uint32(_SIX_DIGITS)).astype(np.uint64)
    digits = np.empty((6, values.shape[0]), np.uint32)
    for place in range(5, -1, -1):
        quotient = (trailing * _DIV10_MAGIC) >> _SHIFT35
        digits[place] = trailing - quotient * np.uint64(10)
        trailing = quotient
    digits += _ZERO_CHAR
    for place in range(6):
        np.bitwise_xor(state, digits[place], out=state)
        np.multiply(state, _PRIME, out=state)
    short = np.flatnonzero(leading == 0)
    if short.size:
        state[short] = _fnv_of_decimal_masked(values[short])
    return state


def _fnv_with_suffix(state: UInt32Array, suffix: UInt32Array) -> UInt32Array:
    """Continue FNV-1a over the same code units for every id, in place."""
    for unit in suffix:
        np.bitwise_xor(state, unit, out=state)
        np.multiply(state, _PRIME, out=state)
    return state


def hash_many(seed: str, units: CodeUnits, version: int) -> FloatArray | None:
    """``gb_hash(seed, id, version)`` for every id; None for an unsupported version."""
    if version not in (1, 2):
        return None
    result = np.empty(units.count, np.float64)
    seed_state = np.uint32(fnv1a32_continue(FNV_OFFSET_BASIS, seed))
    suffix = _utf16_units(seed)
    for start in range(0, units.count, _BLOCK):
        block = slice(start, start + _BLOCK)
        columns, lengths = units.columns[:, block], units.lengths[block]
        if version == 2:  # fnv(str(fnv(seed + value))) % 10000 / 10000
            state = np.full(lengths.shape, seed_state, np.uint32)
            state = _fnv_of_decimal(_fnv_block(state, columns, lengths))
            np.divide(state % np.uint32(10000), 10000, out=result[block])
        else:  # fnv(value + seed) % 1000 / 1000; FNV is sequential, so the seed goes last
            state = np.full(lengths.shape, FNV_OFFSET_BASIS, np.uint32)
            state = _fnv_with_suffix(_fnv_block(state, columns, lengths), suffix)
            np.divide(state % np.uint32(1000), 1000, out=result[block])
    return result
