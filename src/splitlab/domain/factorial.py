"""The factorial-experiment contract: variants that each set several factors.

An experiment is *factorial* when its variants' payloads carry a ``factors`` object::

    variants:
      - {key: control,    is_control: true, payload: {factors: {layout: old, price: high}}}
      - {key: layout_new,                   payload: {factors: {layout: new, price: high}}}
      - {key: price_low,                    payload: {factors: {layout: old, price: low}}}
      - {key: both,                         payload: {factors: {layout: new, price: low}}}

The rules (checked when the experiment is written, and again before a factorial analysis):

* every variant's payload is an object with ``factors``: the same 1 to 6 factor names in
  every variant, each level a string, number or boolean (compared as text);
* every factor has exactly two levels, and each of the 2^k combinations of levels is set by
  exactly one variant (a full 2^k design, no replicate variants);
* the control variant sets every factor to its *low* (baseline, −1) level; the other level
  is *high* (+1).  Other payload keys are left alone (they are handed to the client).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_FACTORS = 6
FACTORS_KEY = "factors"


@dataclass(frozen=True)
class Factor:
    """One factor: its ``name`` and its ``low`` (control's) and ``high`` levels."""

    name: str
    low: str
    high: str


@dataclass(frozen=True)
class FactorialDesign:
    """A validated 2^k design: ``factors`` in the order they are named in the control's
    payload, and per variant key its ±1 level of each factor (``signs``)."""

    factors: tuple[Factor, ...]
    signs: dict[str, tuple[int, ...]]

    @property
    def k(self) -> int:
        return len(self.factors)

    def levels(self, variant: str) -> dict[str, str]:
        """The level of each factor that ``variant`` sets."""
        return {
            f.name: (f.high if s > 0 else f.low)
            for f, s in zip(self.factors, self.signs[variant], strict=True)
        }


class NotFactorialError(ValueError):
    """The variants do not form a factorial design; ``problems`` are (location, message)."""

    def __init__(self, problems: list[tuple[list[Any], str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(message for _, message in problems))


def is_factorial(payloads: Sequence[Any]) -> bool:
    """Whether any payload declares ``factors`` (so the design rules apply)."""
    return any(isinstance(p, Mapping) and FACTORS_KEY in p for p in payloads)


def _level(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


def factorial_design(variants: Sequence[tuple[str, Any, bool]]) -> FactorialDesign:
    """Validate ``(key, payload, is_control)`` triples as a 2^k design (module docstring);
    raises :class:`NotFactorialError` naming every problem."""
    problems: list[tuple[list[Any], str]] = []
    factor_maps: list[dict[str, str]] = []
    for i, (key, payload, _) in enumerate(variants):
        loc: list[Any] = ["variants", i, "payload", FACTORS_KEY]
        raw = payload.get(FACTORS_KEY) if isinstance(payload, Mapping) else None
        if not isinstance(raw, Mapping) or not raw:
            problems.append((loc, f"variant {key!r} sets no factors (payload.factors object)"))
            factor_maps.append({})
            continue
        levels: dict[str, str] = {}
        for name, value in raw.items():
            level = _level(value)
            if level is None:
                problems.append(([*loc, name], "a level is a string, number or boolean"))
            else:
                levels[str(name)] = level
        factor_maps.append(levels)
    if problems:
        raise NotFactorialError(problems)
    controls = [i for i, (_, _, is_control) in enumerate(variants) if is_control]
    if len(controls) != 1:
        raise NotFactorialError([(["variants"], "a factorial design has exactly one control")])
    names = list(factor_maps[controls[0]])
    if not 1 <= len(names) <= MAX_FACTORS:
        raise NotFactorialError(
            [(["variants"], f"a factorial design has 1 to {MAX_FACTORS} factors")]
        )
    for i, levels in enumerate(factor_maps):
        if set(levels) != set(names):
            problems.append(
                (
                    ["variants", i, "payload", FACTORS_KEY],
                    f"every variant sets the same factors ({', '.join(names)})",
                )
            )
    if problems:
        raise NotFactorialError(problems)
    factors: list[Factor] = []
    for name in names:
        low = factor_maps[controls[0]][name]
        others = sorted({m[name] for m in factor_maps} - {low})
        if len(others) != 1:
            problems.append(
                (["variants"], f"factor {name!r} needs exactly two levels, has {len(others) + 1}")
            )
            continue
        factors.append(Factor(name, low, others[0]))
    if problems:
        raise NotFactorialError(problems)
    expected = 2 ** len(factors)
    if len(variants) != expected:
        problems.append(
            (["variants"], f"{len(factors)} factors need {expected} variants, not {len(variants)}")
        )
    signs: dict[str, tuple[int, ...]] = {}
    seen: dict[tuple[int, ...], str] = {}
    for (key, _, _), levels in zip(variants, factor_maps, strict=True):
        combo = tuple(1 if levels[f.name] == f.high else -1 for f in factors)
        if combo in seen:
            problems.append(
                (["variants"], f"variants {seen[combo]!r} and {key!r} set the same levels")
            )
        seen[combo] = key
        signs[key] = combo
    if problems:
        raise NotFactorialError(problems)
    return FactorialDesign(tuple(factors), signs)
