"""GrowthBook-compatible hashing of one unit id (pure Python, tuned for the hot path).

Strings are hashed as **UTF-16 code units**, exactly as the JavaScript SDK does with
``charCodeAt``. For ids in the Basic Multilingual Plane (every ASCII id, every UUID) this
is identical to hashing code points, which is what GrowthBook's Python SDK does; the two
differ only for characters above U+FFFF (emoji, rare CJK), where a code point becomes a
surrogate pair. Splitlab follows JavaScript there so that browser clients, which are the
most common GrowthBook SDKs, agree with us bit for bit.
"""

from __future__ import annotations

FNV_OFFSET_BASIS = 0x811C9DC5
FNV_PRIME = 0x01000193
_MASK32 = 0xFFFFFFFF

SUPPORTED_HASH_VERSIONS = (1, 2)


def utf16_code_units(text: str) -> bytes | list[int]:
    """The UTF-16 code units of ``text`` as an iterable of ints (bytes when ASCII)."""
    if text.isascii():
        return text.encode("ascii")
    if max(text) <= "\uffff":
        return [ord(ch) for ch in text]
    raw = text.encode("utf-16-le", "surrogatepass")
    return [raw[i] | (raw[i + 1] << 8) for i in range(0, len(raw), 2)]


def fnv1a32_continue(state: int, text: str) -> int:
    """Continue a 32-bit FNV-1a hash from ``state`` over the UTF-16 code units of ``text``."""
    for unit in utf16_code_units(text):
        state = ((state ^ unit) * FNV_PRIME) & _MASK32
    return state


def fnv1a32(text: str) -> int:
    """32-bit FNV-1a of ``text`` hashed as UTF-16 code units (GrowthBook's ``hashFnv32a``)."""
    return fnv1a32_continue(FNV_OFFSET_BASIS, text)


def gb_hash(seed: str, value: str, version: int) -> float | None:
    """GrowthBook's ``hash(seed, value, version)`` in ``[0, 1)``; None for unknown versions.

    * version 1: ``(fnv(value + seed) % 1000) / 1000``
    * version 2: ``(fnv(str(fnv(seed + value))) % 10000) / 10000``
    """
    if version == 2:
        return (fnv1a32(str(fnv1a32(seed + value))) % 10000) / 10000
    if version == 1:
        return (fnv1a32(value + seed) % 1000) / 1000
    return None


# The second round of version 2 hashes the decimal string of a 32-bit integer. Its leading
# digits form a prefix whose FNV state never depends on the unit, so precompute the state
# after every prefix of up to _PREFIX_DIGITS digits. This is per-algorithm precomputation
# (about 11k entries), not a cache of per-unit results.
_PREFIX_DIGITS = 4


def _build_digit_prefix_table() -> dict[str, int]:
    table: dict[str, int] = {"": FNV_OFFSET_BASIS}
    frontier = [""]
    for _ in range(_PREFIX_DIGITS):
        next_frontier = []
        for prefix in frontier:
            state = table[prefix]
            for digit in "0123456789":
                extended = prefix + digit
                table[extended] = ((state ^ ord(digit)) * FNV_PRIME) & _MASK32
                next_frontier.append(extended)
        frontier = next_frontier
    return table


_DIGIT_PREFIX_STATE = _build_digit_prefix_table()


# Python ints do not overflow, and the low 32 bits of ``(h ^ c) * prime`` depend only on
# the low 32 bits of ``h``, so the hot loops mask once at the end instead of every step.
# Below this many code units the intermediate integers stay small enough to be cheaper.
UNMASKED_MAX_UNITS = 64


def v2_from_seed_state(
    seed_state: int,
    value: str,
    _prime: int = FNV_PRIME,
    _prefix_state: dict[str, int] = _DIGIT_PREFIX_STATE,
) -> float:
    """Version-2 hash given the FNV state after the seed: the hot path of local evaluation.

    (The underscored defaults only turn globals into fast locals.)
    """
    if value.isascii() and len(value) <= UNMASKED_MAX_UNITS:
        state = seed_state
        for unit in value.encode("ascii"):
            state = (state ^ unit) * _prime
        state &= _MASK32
    else:
        state = fnv1a32_continue(seed_state, value)
    digits = str(state)
    state = _prefix_state[digits[:_PREFIX_DIGITS]]
    for unit in digits[_PREFIX_DIGITS:].encode("ascii"):
        state = (state ^ unit) * _prime
    return ((state & _MASK32) % 10000) / 10000


def v1_with_suffix(value: str, suffix_units: tuple[int, ...], _prime: int = FNV_PRIME) -> float:
    """Version-1 hash ``fnv(value + seed) % 1000 / 1000`` given the seed's code units."""
    if value.isascii() and len(value) <= UNMASKED_MAX_UNITS:
        state = FNV_OFFSET_BASIS
        for unit in value.encode("ascii"):
            state = (state ^ unit) * _prime
    else:
        state = fnv1a32_continue(FNV_OFFSET_BASIS, value)
    for unit in suffix_units:
        state = (state ^ unit) * _prime
    return ((state & _MASK32) % 1000) / 1000
