"""Variant payloads (what each arm configures: a model, a prompt, a build, a price) for many
experiments in one Core query, for the model leaderboard and the ML overlays."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from splitlab.store.tables import ExperimentRow, VariantRow

_CHUNK = 500


def variant_payloads(*, session: Session, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Experiment key → {variant key: payload (None when unset)}, variants in their order;
    unknown keys are left out."""
    wanted = sorted(set(keys))
    found: dict[str, dict[str, Any]] = {}
    connection = session.connection()
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        query = (
            select(ExperimentRow.key, VariantRow.key, VariantRow.payload)
            .join(VariantRow, VariantRow.experiment_id == ExperimentRow.id)
            .where(ExperimentRow.key.in_(chunk))
            .order_by(ExperimentRow.key, VariantRow.position)
        )
        for key, variant, payload in connection.execute(query):
            found.setdefault(key, {})[variant] = payload
    return found
