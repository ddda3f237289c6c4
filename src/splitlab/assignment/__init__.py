"""Deterministic, GrowthBook-compatible assignment of units to experiment variants.

Pure and I/O-free except ``bulk_assign_file``. The API, the SDK and the bandit loop build
on these seams:

* ``ExperimentConfig`` (+ ``to_dict``/``from_dict``): what ``/api/sdk/config`` serves.
* ``assign(config, unit_id, attributes, sticky=...)`` -> ``Assignment``: one unit.
* ``StickyStore``: the Protocol a persistent sticky-bucket store implements.
* ``assign_bulk`` / ``bulk_assign_file``: many units, vectorised.
* ``ExperimentConfig.with_weights``: new weights (bandits) without moving sticky units.
"""

from splitlab.assignment.buckets import bucket_ranges, choose_variant, in_namespace
from splitlab.assignment.bulk import BulkAssignment, assign_bulk
from splitlab.assignment.config import (
    DEFAULT_HASH_VERSION,
    ExperimentConfig,
    Holdout,
    Namespace,
    VariantConfig,
)
from splitlab.assignment.engine import REASONS, Assignment, CompiledExperiment, assign
from splitlab.assignment.files import bulk_assign_file
from splitlab.assignment.hashing import fnv1a32, gb_hash
from splitlab.assignment.sticky import InMemoryStickyStore, StickyStore
from splitlab.assignment.targeting import eval_condition

__all__ = [
    "DEFAULT_HASH_VERSION",
    "REASONS",
    "Assignment",
    "BulkAssignment",
    "CompiledExperiment",
    "ExperimentConfig",
    "Holdout",
    "InMemoryStickyStore",
    "Namespace",
    "StickyStore",
    "VariantConfig",
    "assign",
    "assign_bulk",
    "bucket_ranges",
    "bulk_assign_file",
    "choose_variant",
    "eval_condition",
    "fnv1a32",
    "gb_hash",
    "in_namespace",
]
