"""Metric definitions in the app store, versioned.

Every change of a definition is a new version (``metric_versions`` keeps them all); an
experiment pins the versions it uses when it starts running and is analysed with those, so
a running experiment's metric is never silently replaced.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from splitlab.domain import MetricDefinition, Principal
from splitlab.domain.limits import STORED
from splitlab.errors import ConflictError, NotFoundError
from splitlab.store.audit import write_audit
from splitlab.store.tables import MetricRow, MetricVersionRow

FIELDS = tuple(MetricDefinition.model_fields)


def metric_from_row(row: MetricRow) -> MetricDefinition:
    data = {name: getattr(row, name) for name in FIELDS}
    if data["margin_scale"] is None:  # NULL: relative, as a metric's margin always was
        del data["margin_scale"]
    return MetricDefinition.model_validate(data, context=STORED)


def get_metric(*, session: Session, key: str) -> MetricRow:
    row = session.scalar(select(MetricRow).where(MetricRow.key == key))
    if row is None:
        raise NotFoundError(f"no metric {key!r}", details={"key": key})
    return row


def metric_to_dict(row: MetricRow) -> dict[str, Any]:
    """The JSON form: the definition plus its current version."""
    return metric_from_row(row).model_dump(mode="json") | {"version": row.version}


def get_metric_version(*, session: Session, key: str, version: int) -> MetricDefinition:
    """Version ``version`` of metric ``key``'s definition."""
    row = session.scalar(
        select(MetricVersionRow).where(
            MetricVersionRow.metric_key == key, MetricVersionRow.version == version
        )
    )
    if row is None:
        raise NotFoundError(
            f"metric {key!r} has no version {version}", details={"key": key, "version": version}
        )
    return MetricDefinition.model_validate(row.definition, context=STORED)


def list_metric_versions(*, session: Session, key: str) -> list[dict[str, Any]]:
    """Every version of metric ``key``, newest first."""
    get_metric(session=session, key=key)  # 404 for an unknown key
    rows = session.scalars(
        select(MetricVersionRow)
        .where(MetricVersionRow.metric_key == key)
        .order_by(MetricVersionRow.version.desc())
    )
    return [
        {
            "version": r.version,
            "created_by": r.created_by,
            "created_at": (
                r.created_at if r.created_at.tzinfo else r.created_at.replace(tzinfo=UTC)
            ).isoformat(),
            "definition": r.definition,
        }
        for r in rows
    ]


def current_versions(*, session: Session, keys: Iterable[str]) -> dict[str, int]:
    """Metric key → current version, for the keys that exist."""
    wanted = set(keys)
    if not wanted:
        return {}
    rows = session.execute(
        select(MetricRow.key, MetricRow.version).where(MetricRow.key.in_(wanted))
    )
    return {key: version for key, version in rows}


def list_metrics(*, session: Session) -> list[MetricRow]:
    return list(session.scalars(select(MetricRow).order_by(MetricRow.key)))


def missing_metrics(*, session: Session, keys: Iterable[str]) -> list[str]:
    wanted = set(keys)
    if not wanted:
        return []
    found = set(session.scalars(select(MetricRow.key).where(MetricRow.key.in_(wanted))))
    return sorted(wanted - found)


def upsert_metric(
    *, session: Session, definition: MetricDefinition, actor: Principal
) -> tuple[MetricRow, bool]:
    """Create a metric definition, or make ``definition`` the next version of the existing one
    (an identical definition changes nothing); returns (row, created).

    A new version is audited on the metric and on every experiment that uses the metric:
    started experiments keep analysing the version they pinned, and an approval of an
    experiment in review or scheduled is voided (its configuration changed).
    """
    row = session.scalar(select(MetricRow).where(MetricRow.key == definition.key))
    values = definition.model_dump(mode="json")
    created = row is None
    if row is None:
        row = MetricRow(**values, version=1)
        session.add(row)
        changes = None
    else:
        before = metric_from_row(row).model_dump(mode="json")
        changes = {
            k: {"before": before.get(k), "after": values.get(k)}
            for k in FIELDS
            if before.get(k) != values.get(k)
        }
        if not changes:
            return row, False
        for name in FIELDS:  # a field the JSON leaves out (a relative margin_scale) is NULL
            setattr(row, name, values.get(name))
        changes["version"] = {"before": row.version, "after": row.version + 1}
        row.version += 1
    session.add(
        MetricVersionRow(
            metric_key=definition.key,
            version=row.version,
            definition=values,
            created_by=actor.username,
        )
    )
    try:
        session.flush()
    except IntegrityError as exc:  # another request created the key or this version first
        raise ConflictError(
            f"metric {definition.key!r} was changed by another request meanwhile; reload and "
            "send it again",
            details={"key": definition.key},
        ) from exc
    write_audit(
        session=session,
        entity="metric",
        entity_key=definition.key,
        action="create" if created else "update",
        actor=actor.username,
        reason="" if created else f"version {row.version}",
        changes=changes,
        snapshot=values | {"version": row.version},
    )
    session.flush()
    if not created:
        # store.experiments imports this module; the dependency back is only at call time
        from splitlab.store.experiments import metric_changed

        metric_changed(
            session=session,
            key=definition.key,
            version=row.version,
            fields=changes or {},
            actor=actor,
        )
    return row, created
