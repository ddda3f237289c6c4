"""What ingestion needs to know about an experiment, read from the app store and checked by
the warehouse's validation."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from splitlab.domain.enums import Status

ACCEPTING = frozenset({Status.RUNNING, Status.ROLLING_OUT})
"""Experiment states that accept exposures and experiment-scoped events."""


@dataclass(frozen=True, slots=True)
class ExperimentSummary:
    """What ingestion needs to know about an experiment (built by the app store)."""

    key: str
    status: Status
    variants: frozenset[str]
    start_at: datetime | None = None
    pre_period: timedelta = field(default=timedelta(0))
    """Longest CUPED pre-period of its metrics: events this long before the start are kept."""

    @property
    def accepting(self) -> bool:
        return self.status in ACCEPTING
