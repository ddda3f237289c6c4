"""The event warehouse: exposures and events, written exactly once, read through Ibis."""

from splitlab.domain.summary import ExperimentSummary
from splitlab.warehouse.base import Warehouse, WarehouseBusyError, event_fact, exposure_fact
from splitlab.warehouse.facts import (
    Fact,
    ItemResult,
    ItemStatus,
    Kind,
    Watermark,
    derive_id,
)
from splitlab.warehouse.sources import SourceMapping, load_sources
from splitlab.warehouse.validation import parse_item

__all__ = [
    "ExperimentSummary",
    "Fact",
    "ItemResult",
    "ItemStatus",
    "Kind",
    "SourceMapping",
    "Warehouse",
    "WarehouseBusyError",
    "Watermark",
    "derive_id",
    "event_fact",
    "exposure_fact",
    "load_sources",
    "parse_item",
]
