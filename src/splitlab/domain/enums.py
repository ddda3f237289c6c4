"""The closed vocabularies of the domain, as string enums (their values are the JSON names)."""

from __future__ import annotations

from enum import StrEnum


class ExperimentType(StrEnum):
    FEATURE = "feature"
    MODEL_COMPARISON = "model_comparison"
    PROMPT = "prompt"
    INFRASTRUCTURE = "infrastructure"
    COST_OPTIMIZATION = "cost_optimization"
    BANDIT = "bandit"


class Status(StrEnum):
    DRAFT = "draft"
    REVIEW = "review"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    STOPPED = "stopped"
    READOUT = "readout"
    ROLLING_OUT = "rolling_out"
    SHIPPED = "shipped"
    KILLED = "killed"
    ROLLED_BACK = "rolled_back"


class Engine(StrEnum):
    FREQUENTIST = "frequentist"
    SEQUENTIAL = "sequential"
    BAYESIAN = "bayesian"


class RelativeInterval(StrEnum):
    """How the CI of a relative effect is computed (see ``splitlab.stats.relative_interval``)."""

    DELTA = "delta"
    FIELLER = "fieller"
    LOG = "log"


class BinaryTest(StrEnum):
    """The fixed-horizon test of a binary metric without covariates."""

    Z = "z"
    """Two-proportion z-test (pooled statistic, unpooled Wald CI)."""
    WELCH = "welch"
    """Welch's t-test on the 0/1 per-unit values (matches teams' older t-test numbers)."""


class ThresholdScale(StrEnum):
    """The scale of a guardrail margin or minimum lift."""

    RELATIVE = "relative"
    """A fraction of the control mean (0.05: 5%), compared with the relative effect."""
    ABSOLUTE = "absolute"
    """In the metric's own units, compared with the absolute effect (treatment − control)."""


class Correction(StrEnum):
    HOLM = "holm"
    BH = "bh"
    NONE = "none"


class MetricKind(StrEnum):
    BINARY = "binary"
    COUNT = "count"
    SUM = "sum"
    RATIO = "ratio"
    QUANTILE = "quantile"


class Direction(StrEnum):
    INCREASE = "increase"
    DECREASE = "decrease"


class MetricRole(StrEnum):
    PRIMARY = "primary"
    SECONDARY = "secondary"
    GUARDRAIL = "guardrail"


class Role(StrEnum):
    """User roles, ordered: each includes the rights of the ones before it."""

    VIEWER = "viewer"
    EDITOR = "editor"
    REVIEWER = "reviewer"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _ROLE_RANK[self]

    def at_least(self, other: Role) -> bool:
        return self.rank >= other.rank


_ROLE_RANK = {role: rank for rank, role in enumerate(Role)}


class Scope(StrEnum):
    """API key scopes: ``ingest`` writes events only, ``read`` reads, ``admin`` acts as its user."""

    INGEST = "ingest"
    READ = "read"
    ADMIN = "admin"


class ReviewDecision(StrEnum):
    APPROVE = "approve"
    REQUEST_CHANGES = "request_changes"
