"""Factorial experiments and interactions between experiments that share units:
``GET /api/experiments/{key}/factorial`` and ``GET /api/experiments/{key}/interactions``.

Both are computed on demand from the warehouse (one aggregate query each, not cached).
404: no such experiment (either one); 422: not a full 2^k factorial design (each problem
named), ``with`` missing or naming the experiment itself, or no units shared by the two.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from splitlab.analysis.factorial import FactorialResult, analyze_factorial
from splitlab.analysis.interactions import InteractionsResult, analyze_interactions
from splitlab.api.deps import Reader, ServicesDep

router = APIRouter(prefix="/api/experiments", tags=["factorial"])


@router.get("/{key}/factorial")
def factorial(key: str, services: ServicesDep, _: Reader) -> FactorialResult:
    """Main effects and interactions of a 2^k factorial experiment (variants whose
    ``payload.factors`` set every factor; the control sets each factor low), per metric
    that is a per-unit mean: effect (high − low), its CI, t, p, Type III sum of squares and
    F, as statsmodels' ``anova_lm(typ=3)`` with sum-to-zero coding. 422 when the variants
    are not a full 2^k design."""
    return analyze_factorial(services=services, key=key)


@router.get("/{key}/interactions")
def interactions(
    key: str,
    services: ServicesDep,
    _: Reader,
    other: Annotated[
        str,
        Query(
            alias="with",
            min_length=1,
            max_length=200,
            description="the key of the other experiment sharing units with this one",
        ),
    ],
) -> InteractionsResult:
    """Does this experiment's effect differ by the arm of experiment ``with``?  On the units
    both analyse: the effect within each of its arms, the interaction (effect in an arm
    minus in its control, with CI and t test) and the omnibus F, per per-unit-mean metric."""
    return analyze_interactions(services=services, key=key, other=other)
