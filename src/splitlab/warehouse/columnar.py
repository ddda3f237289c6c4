"""Validation of a whole ``/api/events`` batch, column by column.

``validation.parse_item`` is the one source of truth for the rules and their messages; this
module only decides, with vectorised pyarrow checks per column, which items are *plainly*
valid — the canonical spelling (``experimentKey``, ``variantKey``, ``props``), clean strings
of the right length without control characters, a known running experiment and one of its
variants, a number within the limit, a time inside the allowed window, ``props`` passing
``validation.properties_json`` — and builds their facts from the columns. Every other item
(an alias, a number as ``userKey``, a missing field, anything odd) goes through
``parse_item``, which accepts it or raises the error naming the field. So the results are
the same as validating item by item; only the cost differs (~5x less for a 10,000-item
batch, most of what remains is hashing derived ids and serialising ``props``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from splitlab.errors import SplitlabError
from splitlab.ids import EXPOSURE, SEPARATOR, fact_key
from splitlab.warehouse.facts import Fact, Kind
from splitlab.warehouse.rules import (
    CLOCK_SKEW,
    CONTROL_SQL,
    MAX_ABS_VALUE,
    MAX_FUTURE,
    MAX_TEXT,
    WHITESPACE,
)
from splitlab.warehouse.validation import (
    MICROSECOND,
    MIN_TIME_US,
    Lookup,
    clean_key,
    parse_item,
    parse_timestamp,
    properties_json,
    to_us,
)

ALIASES = ("experimentId", "variantId", "properties")
"""Spellings left to ``parse_item`` (it decides which of two spellings wins)."""


class ParsedBatch(NamedTuple):
    """Facts of the valid items with their positions (ascending), and the rejected items."""

    positions: list[int]
    facts: list[Fact]
    errors: dict[int, SplitlabError]


def _strings(values: list[Any]) -> tuple[pa.Array, np.ndarray]:
    """The column as a string array (non-strings as null) and where non-strings were."""
    try:
        array = pa.array(values, pa.string())
        return array, np.zeros(len(values), bool)
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeEncodeError):
        # not a string, or one Arrow cannot hold (an unpaired surrogate): parse_item decides
        odd = np.array([v is not None and not _utf8(v) for v in values], bool)
        return pa.array(
            [None if o else v for v, o in zip(values, odd, strict=True)], pa.string()
        ), odd


def _utf8(value: Any) -> bool:
    if type(value) is not str:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _clean(array: pa.Array) -> np.ndarray:
    """Present, 1–``MAX_TEXT`` characters, no surrounding whitespace, no control characters."""
    length = np.asarray(pc.utf8_length(array).fill_null(0))
    stripped = np.asarray(pc.equal(pc.utf8_trim(array, WHITESPACE), array).fill_null(False))
    return stripped & ~_control(array) & (length >= 1) & (length <= MAX_TEXT)


def _control(array: pa.Array) -> np.ndarray:
    """Which strings hold a control character. One numpy pass over the column's UTF-8 bytes
    first — a column nearly always has none, and the regex costs ~15x more."""
    data = array.buffers()[2]
    raw = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    c1 = np.flatnonzero(raw[:-1] == 0xC2)  # U+0080–U+009F are C2 80 – C2 9F
    if not ((raw < 0x20).any() or (raw == 0x7F).any() or (raw[c1 + 1] <= 0x9F).any()):
        return np.zeros(len(array), bool)
    return np.asarray(pc.match_substring_regex(array, CONTROL_SQL).fill_null(False))


def _present(array: pa.Array) -> np.ndarray:
    return np.asarray(array.is_valid())


def parse_batch(items: list[Any], *, lookup: Lookup, now: int, source: str = "api") -> ParsedBatch:
    """Validate ``items`` as ``parse_item`` would, plain items column-wise."""
    n = len(items)
    dicts = [item if type(item) is dict else {} for item in items]
    alias, variant_alias, props_alias = ALIASES
    plain = np.array(
        [
            type(item) is dict
            and item.get(alias) is None
            and item.get(variant_alias) is None
            and item.get(props_alias) is None
            for item in items
        ],
        bool,
    )

    def column(name: str) -> list[Any]:
        return [d.get(name) for d in dicts]

    experiment, odd_experiment = _strings(column("experimentKey"))
    variant, odd_variant = _strings(column("variantKey"))
    unit, odd_unit = _strings(column("userKey"))
    name, odd_name = _strings(column("eventType"))
    client_id, odd_client = _strings(column("eventId"))
    plain &= ~(odd_experiment | odd_variant | odd_unit | odd_name | odd_client)
    # required and clean; the experiment is required here (events without one go the slow way)
    plain &= _clean(experiment) & _clean(unit) & _clean(name)
    has_variant, has_client = _present(variant), _present(client_id)
    plain &= ~has_variant | _clean(variant)
    plain &= ~has_client | _clean(client_id)
    exposure = np.asarray(pc.equal(name, EXPOSURE).fill_null(False))
    plain &= ~exposure | has_variant

    # experiment accepting, variant one of its variants, time window
    summaries = {}
    for key in pc.unique(experiment).to_pylist():
        summary = lookup(key) if key is not None and clean_key(key) else None
        if summary is not None and summary.accepting:
            summaries[key] = summary
    keys = pa.array(list(summaries), pa.string())
    slot = pc.index_in(experiment, value_set=keys)
    plain &= np.asarray(slot.is_valid())
    pairs = pa.array(
        [f"{k}{SEPARATOR}{v}" for k, s in summaries.items() for v in s.variants], pa.string()
    )
    known_variant = pc.is_in(pc.binary_join_element_wise(experiment, variant, SEPARATOR), pairs)
    plain &= ~has_variant | np.asarray(known_variant.fill_null(False))

    values = column("value")
    value = _numbers(values)
    if value is None:
        plain &= np.array([v is None for v in values], bool)
        value = pa.nulls(n, pa.float64())
    else:
        # NaN compares false; an infinity is out of range
        within = pc.less_equal(pc.abs(value), MAX_ABS_VALUE)
        plain &= np.asarray(pc.or_kleene(value.is_null(), within).fill_null(False))

    occurred = np.full(n, now, np.int64)
    for index, raw in enumerate(column("occurredAt")):
        if raw is not None and plain[index]:
            try:
                occurred[index] = parse_timestamp("occurredAt", raw)
            except (SplitlabError, OverflowError, ValueError):
                plain[index] = False
    plain &= (occurred - now <= MAX_FUTURE // MICROSECOND) & (occurred >= MIN_TIME_US)
    never = np.iinfo(np.int64).min
    earliest_exposure = np.array(
        [to_us(s.start_at - CLOCK_SKEW) if s.start_at else never for s in summaries.values()]
        + [never],
        np.int64,
    )
    earliest_event = np.array(
        [to_us(s.start_at - s.pre_period) if s.start_at else never for s in summaries.values()]
        + [never],
        np.int64,
    )
    where = np.asarray(slot.fill_null(len(summaries)))
    earliest = np.where(exposure, earliest_exposure[where], earliest_event[where])
    plain &= occurred >= earliest

    props = column("props")
    texts: list[str | None] = []
    for index, raw in enumerate(props):
        if raw is None:
            texts.append("{}")
        elif type(raw) is dict and plain[index]:
            try:
                texts.append(properties_json("props", raw))
            except SplitlabError:  # parse_item says so, naming the field
                plain[index] = False
                texts.append(None)
        else:
            plain[index] = False
            texts.append(None)

    return _assemble(
        items,
        plain,
        experiment,
        variant,
        unit,
        name,
        client_id,
        value,
        occurred,
        texts,
        source,
        lookup=lookup,
        now=now,
    )


def _numbers(values: list[Any]) -> pa.Array | None:
    """``value`` as float64 when every present value is an int or float (no bools)."""
    try:
        array = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return None
    if not (
        pa.types.is_floating(array.type)
        or pa.types.is_integer(array.type)
        or pa.types.is_null(array.type)
    ):
        return None
    try:  # a safe cast refuses an int a double cannot hold exactly: parse_item decides
        return array.cast(pa.float64())
    except pa.ArrowInvalid:
        return None


def _assemble(
    items: list[Any],
    plain: np.ndarray,
    experiment: pa.Array,
    variant: pa.Array,
    unit: pa.Array,
    name: pa.Array,
    client_id: pa.Array,
    value: pa.Array,
    occurred: np.ndarray,
    props: list[str | None],
    source: str,
    *,
    lookup: Lookup,
    now: int,
) -> ParsedBatch:
    """Facts in item order: plain items from the columns, the rest through ``parse_item``."""
    experiments, units, names = experiment.to_pylist(), unit.to_pylist(), name.to_pylist()
    event_ids = client_id.to_pylist()
    keys: list[str | None] = list(event_ids)
    kinds = [Kind.EVENT] * len(items)
    for index in np.flatnonzero(plain).tolist():
        event_type = names[index]
        if event_type == EXPOSURE:
            kinds[index] = Kind.EXPOSURE
        elif event_ids[index] is not None:
            continue  # keyed by the client's id
        keys[index], event_ids[index] = fact_key(
            experiments[index], units[index], event_type, event_ids[index]
        )
    rows = zip(
        kinds,
        keys,
        event_ids,
        experiments,
        variant.to_pylist(),
        units,
        names,
        value.to_pylist(),
        occurred.tolist(),
        props,
        [source] * len(items),
        strict=True,
    )
    make = Fact._make
    positions: list[int] = []
    facts: list[Fact] = []
    errors: dict[int, SplitlabError] = {}
    for index, (fast, row) in enumerate(zip(plain.tolist(), rows, strict=True)):
        if fast:
            facts.append(make(row))
        else:
            try:
                facts.append(parse_item(items[index], lookup=lookup, now=now, source=source))
            except SplitlabError as error:
                errors[index] = error
                continue
        positions.append(index)
    return ParsedBatch(positions, facts, errors)
