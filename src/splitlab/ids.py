"""The identity of a fact: one rule for the ids every path derives (no heavy imports — the
SDK in ``client.py`` uses it too).

* an **event** is keyed by its event id: the client's ``eventId`` when it sends one,
  otherwise ``derive_id(experiment_key or "", unit_id, event_name)`` — so "one conversion per
  user and experiment" and "exactly once per id" are both a primary-key dedup;
* an **exposure** has an event id by the same rule (its name is ``"exposure"``) and is keyed
  by ``exposure_id(experiment_key, unit_id)``: one row per (experiment, unit);
* the same unit again in another variant is a *conflict*, keyed by
  ``conflict_id(experiment_key, unit_id, variant_key)``.

The SQL twins (DuckDB and PostgreSQL) are built from ``SEPARATOR`` in
``warehouse.facts``.
"""

from __future__ import annotations

import hashlib

SEPARATOR = "\x1f"
"""ASCII unit separator between the parts of a derived id (``chr(31)`` in SQL)."""
EXPOSURE = "exposure"
"""The event name of an exposure."""


def derive_id(*parts: str) -> str:
    """md5 hex of the parts joined by ``SEPARATOR``.

    SQL twin: ``md5(concat_ws(chr(31), part, ...))`` on DuckDB and PostgreSQL.
    """
    return hashlib.md5(SEPARATOR.join(parts).encode(), usedforsecurity=False).hexdigest()


def event_id(
    experiment_key: str | None, unit_id: str, name: str, client_id: str | None = None
) -> str:
    """The event id of a fact: the client's, else derived from (experiment, unit, name)."""
    return client_id or derive_id(experiment_key or "", unit_id, name)


def exposure_id(experiment_key: str, unit_id: str) -> str:
    """The dedup key of an exposure: one per (experiment, unit)."""
    return derive_id(experiment_key, unit_id)


def conflict_id(experiment_key: str, unit_id: str, variant_key: str) -> str:
    """The dedup key of an exposure to a second variant."""
    return derive_id(experiment_key, unit_id, variant_key)


def fact_key(
    experiment_key: str | None, unit_id: str, name: str, client_id: str | None = None
) -> tuple[str, str]:
    """``(dedup key, event id)`` of an exposure (``name == EXPOSURE``) or an event."""
    event = event_id(experiment_key, unit_id, name, client_id)
    if name == EXPOSURE:
        return exposure_id(experiment_key or "", unit_id), event
    return event, event
