"""Arrow columns of simulated data, built from numpy without a Python object per row.

* ``numbered`` — ids ``prefix + decimal number`` for a contiguous run of numbers, as an
  Arrow string array and (for the assignment engine) a numpy unicode array, from one byte
  matrix filled column-wise (numbers of equal digit count are contiguous rows).
* ``coded`` — a dictionary-encoded column: few distinct strings (experiment, variant and
  event names, a unit's attributes as JSON) stored once with integer codes per row, which
  Parquet keeps dictionary-encoded and DuckDB reads as ordinary text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

IntArray = npt.NDArray[np.int64]
MAX_JSON_COMBINATIONS = 100_000
"""Above this many distinct attribute combinations, ``attribute_json`` joins text per row."""
MAX_ARRAY_BYTES = 2**31 - 1
"""The text one Arrow string array holds (32-bit offsets)."""


def _digit_groups(start: int, count: int) -> list[tuple[int, int, int]]:
    """``(first row, row count, digits)`` of each run of numbers with the same digit count
    among ``start … start + count - 1``."""
    groups, stop, digits = [], start + count, 1
    while True:
        low, high = max(start, 10 ** (digits - 1) if digits > 1 else 0), min(stop, 10**digits)
        if low < high:
            groups.append((low - start, high - low, digits))
        if high >= stop:
            return groups
        digits += 1


def _fill(block: npt.NDArray[np.uint8], prefix: bytes, first: int, digits: int) -> None:
    """Write ``prefix`` and the digits of ``first``, ``first + 1``, … into the rows of
    ``block`` (rows × (len(prefix) + digits) bytes), one column at a time."""
    block[:, : len(prefix)] = np.frombuffer(prefix, np.uint8)
    last = first + block.shape[0]
    numbers = np.arange(first, last, dtype=np.uint32 if last < 2**32 else np.uint64)
    for place in range(digits - 1, -1, -1):  # least significant digit first
        numbers, digit = np.divmod(numbers, 10)
        block[:, len(prefix) + place] = 48 + digit


def numbered(prefix: str, start: int, count: int) -> pa.StringArray | pa.ChunkedArray:
    """``[f"{prefix}{start}", …, f"{prefix}{start + count - 1}"]`` as Arrow strings."""
    raw = prefix.encode()
    groups = _digit_groups(start, count)
    lengths = np.empty(count, np.int64)
    for row, rows, digits in groups:
        lengths[row : row + rows] = len(raw) + digits
    offsets = np.zeros(count + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = np.empty(int(offsets[-1]), np.uint8)
    for row, rows, digits in groups:
        width = len(raw) + digits
        block = data[offsets[row] : offsets[row] + rows * width].reshape(rows, width)
        _fill(block, raw, start + row, digits)
    if offsets[-1] > MAX_ARRAY_BYTES:  # over what one Arrow string array holds: two chunks
        half = count // 2
        first, second = numbered(prefix, start, half), numbered(prefix, start + half, count - half)
        return pa.chunked_array([*_chunks(first), *_chunks(second)])
    small = offsets.astype(np.int32)
    return pa.Array.from_buffers(
        pa.string(), count, [None, pa.py_buffer(small), pa.py_buffer(data)]
    )


def _chunks(column: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    return list(column.chunks) if isinstance(column, pa.ChunkedArray) else [column]


def numbered_unicode(prefix: str, count: int) -> npt.NDArray[np.str_]:
    """``numbered(prefix, 0, count)`` as a numpy unicode array (``prefix`` is ASCII: an
    experiment key is a slug)."""
    raw = prefix.encode("ascii")
    width = len(raw) + len(str(max(count - 1, 0)))
    matrix = np.zeros((count, width), np.uint8)
    for row, rows, digits in _digit_groups(0, count):
        _fill(matrix[row : row + rows, : len(raw) + digits], raw, row, digits)
    return matrix.view(f"S{width}").ravel().astype(f"U{width}")


def coded(
    values: Sequence[str] | pa.Array, codes: npt.NDArray[np.integer] | None, count: int = 0
) -> pa.DictionaryArray:
    """A dictionary column: row i is ``values[codes[i]]`` (``codes`` None: ``count`` rows of
    ``values[0]``; a negative code: null)."""
    dictionary = values if isinstance(values, pa.Array) else pa.array(list(values), pa.string())
    if codes is None:
        indices = pa.array(np.zeros(count, np.int32))
    else:
        raw = np.asarray(codes).astype(np.int32)
        negative = raw < 0
        indices = pa.array(raw, mask=negative) if negative.any() else pa.array(raw)
    return pa.DictionaryArray.from_arrays(indices, dictionary)


def nulls(count: int) -> pa.DictionaryArray:
    """``count`` null rows of a dictionary column of strings."""
    return coded([], np.full(count, -1, np.int32))


def attribute_json(
    attributes: Mapping[str, Sequence[str]], codes: Mapping[str, IntArray], count: int
) -> pa.Array:
    """``{"name": "value", …}`` per row (``codes[name]`` indexes ``attributes[name]``): each
    distinct combination is written once, as a dictionary column."""
    names = list(attributes)
    if not names:
        return pa.nulls(count, pa.string())
    sizes = [len(attributes[name]) for name in names]
    if int(np.prod(np.array(sizes, dtype=float))) > MAX_JSON_COMBINATIONS:
        return _joined_json(attributes, codes)
    combined = np.zeros(count, np.int64)
    for name, size in zip(names, sizes, strict=True):
        combined = combined * size + codes[name]
    present, inverse = np.unique(combined, return_inverse=True)
    texts = []
    for combination in present.tolist():
        chosen: dict[str, str] = {}
        rest = combination
        for name, size in zip(reversed(names), reversed(sizes), strict=True):
            rest, code = divmod(rest, size)
            chosen[name] = attributes[name][code]
        ordered = {name: chosen[name] for name in names}
        texts.append(json.dumps(ordered, separators=(",", ":"), ensure_ascii=False))
    return coded(texts, inverse)


def _joined_json(
    attributes: Mapping[str, Sequence[str]], codes: Mapping[str, IntArray]
) -> pa.Array:
    columns = {
        name: pc.take(pa.array(list(values), pa.string()), codes[name])
        for name, values in attributes.items()
    }
    return json_objects(columns, quoted=True)


def json_objects(columns: Mapping[str, pa.Array], *, quoted: bool) -> pa.Array:
    """``{"name": value, …}`` per row, built column-wise (values are strings or numbers)."""
    parts: list[pa.Array | pa.Scalar] = []
    for i, (name, values) in enumerate(columns.items()):
        text = pc.cast(values, pa.string())
        if quoted:
            text = pc.binary_join_element_wise('"', text, '"', "")
        parts += [pa.scalar(("{" if i == 0 else ",") + f'"{name}":'), text]
    parts.append(pa.scalar("}"))
    return pc.binary_join_element_wise(*parts, "")
