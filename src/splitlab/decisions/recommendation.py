"""What the decision engine says: a recommendation code, the reasons behind it and their
evidence.  The typed form that the API (``/api/experiments/{key}/recommendation``), the CLI
(``splitlab decide``), the readouts, the reports and the dashboard all read.

A recommendation is advice; what a team then does is a *decision* (``decisions.actions``),
which follows or overrides it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Code(StrEnum):
    """The recommendation: what to do with the experiment now."""

    SHIP_GLOBAL = "SHIP_GLOBAL"
    """The primary metric won, significantly and by at least the practical threshold."""
    SHIP_TARGETED_SEGMENTS = "SHIP_TARGETED_SEGMENTS"
    """A significant win confined to some pre-registered segments, no harm in the others."""
    KILL = "KILL"
    """The primary metric moved significantly in its bad direction."""
    ROLLBACK = "ROLLBACK"
    """A running experiment is doing harm the policy does not tolerate: stop it now."""
    HOLD_GUARDRAIL_RISK = "HOLD_GUARDRAIL_RISK"
    """A guardrail is breached or cannot be shown non-inferior."""
    HOLD_INCONCLUSIVE = "HOLD_INCONCLUSIVE"
    """Mature and powered, but no significant, practically large effect."""
    KEEP_RUNNING = "KEEP_RUNNING"
    """Too early: too few units, the minimum run time not reached or metric windows open."""
    PENDING_UNDERPOWERED = "PENDING_UNDERPOWERED"
    """Short of the planned sample; the evidence names the projected days to reach it."""
    INVESTIGATE_INVALID_EXPERIMENT = "INVESTIGATE_INVALID_EXPERIMENT"
    """A critical health check failed: the results cannot be trusted."""


class Stage(StrEnum):
    """The policy's stages, in the order they run."""

    TRUST = "trust"
    GUARDRAILS = "guardrails"
    MATURITY = "maturity"
    PRIMARY = "primary"
    SEGMENTS = "segments"
    VALUE = "value"


class DecisionModel(BaseModel):
    """Frozen and strict about unknown keys, documented from attribute docstrings."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class Reason(DecisionModel):
    """One finding of one stage, with the numbers it rests on."""

    stage: Stage
    """The stage that found it."""
    code: str
    """A short machine-readable reason (``srm_critical``, ``guardrail_breach``,
    ``primary_significant_win``, ``below_minimum_lift``, …; ``decisions.engine.REASONS``)."""
    message: str
    """The finding in plain words, with its numbers."""
    metric: str | None = None
    """The metric it is about, if one."""
    variant: str | None = None
    """The treatment it is about, if one."""
    segment: dict[str, str] | None = None
    """The segment (``{"name": …, "value": …}``) it is about, if one."""
    evidence: dict[str, Any] = Field(default_factory=dict)
    """The numbers behind it (effects, CIs, p-values, thresholds, counts)."""


class BusinessValue(DecisionModel):
    """Expected net value per day of shipping ``variant``, with its confidence interval."""

    variant: str
    per_day: float
    ci_low: float
    ci_high: float
    currency: str = ""
    detail: dict[str, Any] = Field(default_factory=dict)
    """Per-metric value and per-variant cost behind the total."""


class Recommendation(DecisionModel):
    """The engine's advice for one experiment from one snapshot under one policy."""

    experiment: str
    """The experiment's key."""
    code: Code
    """What to do."""
    label: str
    """The same in the words ML dashboards use: ``SHIP``, ``DO NOT SHIP``,
    ``PENDING (UNDERPOWERED)``, ``PENDING (LATENCY REGRESSION)``, ``INCOMPLETE``."""
    summary: str
    """One sentence a product manager can read aloud."""
    variant: str | None = None
    """The treatment to ship (or to roll back / kill), if one."""
    segments: list[dict[str, str]] = Field(default_factory=list)
    """``SHIP_TARGETED_SEGMENTS`` only: the segments to ship to."""
    reasons: list[Reason] = Field(default_factory=list)
    """Every stage's findings, in stage order; the first one of the deciding stage first."""
    evidence: dict[str, Any] = Field(default_factory=dict)
    """Top-level numbers: the deciding comparison, days remaining, thresholds."""
    value: list[BusinessValue] = Field(default_factory=list)
    """Expected net value per day per treatment, when the policy gives values."""
    policy: str
    """The name of the policy applied (after overrides: ``default``, ``team-…``, …)."""
    policy_hash: str
    """Hash of the resolved policy: with ``snapshot_id`` the recommendation's cache key."""
    snapshot_id: int | None = None
    """The snapshot it was made from."""

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return self.model_dump(mode="json")
