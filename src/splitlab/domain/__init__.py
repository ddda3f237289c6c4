"""Plain typed domain objects: no I/O, no imports from the rest of splitlab but errors."""

from splitlab.domain.enums import (
    BinaryTest,
    Correction,
    Direction,
    Engine,
    ExperimentType,
    MetricKind,
    MetricRole,
    RelativeInterval,
    ReviewDecision,
    Role,
    Scope,
    Status,
)
from splitlab.domain.experiments import (
    Capping,
    ExperimentPatch,
    ExperimentSpec,
    GuardrailRef,
    MetricDefinition,
    MetricsSpec,
    Namespace,
    Plan,
    Variant,
)
from splitlab.domain.lifecycle import TRANSITIONS, check_transition, draft_problems
from splitlab.domain.principal import LOCAL_ADMIN, Principal

__all__ = [
    "LOCAL_ADMIN",
    "TRANSITIONS",
    "BinaryTest",
    "Capping",
    "Correction",
    "Direction",
    "Engine",
    "ExperimentPatch",
    "ExperimentSpec",
    "ExperimentType",
    "GuardrailRef",
    "MetricDefinition",
    "MetricKind",
    "MetricRole",
    "MetricsSpec",
    "Namespace",
    "Plan",
    "Principal",
    "RelativeInterval",
    "ReviewDecision",
    "Role",
    "Scope",
    "Status",
    "Variant",
    "check_transition",
    "draft_problems",
]
