"""Planning: sample size, MDE and duration for a metric (the calculator's JSON endpoint)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from splitlab.analysis.sizing import Sizing, SizingInputs, size
from splitlab.api.deps import Reader

router = APIRouter(prefix="/api", tags=["planning"])


@router.get("/power", response_model=Sizing)
def power(inputs: Annotated[SizingInputs, Query()], _: Reader) -> Sizing:
    """Units per variant to detect a relative ``mde`` with the given ``power`` at ``alpha``,
    the days to enrol them at ``daily_units`` × ``coverage``, the power after 1–8 weeks at
    MDEs around the chosen one, and the power curve. 422 names the offending field: a rate
    outside (0, 1), an MDE that takes the rate past 1, a mean or ratio metric without ``sd``,
    a value out of range or not a number."""
    return size(inputs)
