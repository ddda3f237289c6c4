"""Allocation: stored experiments as assignment configs, sticky bucketing over the warehouse,
and bandit re-weighting.

The glue between the pure ``assignment`` engine and the two stores, shared by
``/api/assign``, ``/api/sdk/config``, ``splitlab assign`` and the bandit loop:

* ``config_from_spec`` — an ``ExperimentSpec`` as the ``ExperimentConfig`` the engine runs.
* ``Allocations`` — the live experiments' compiled configs, cached in the process and
  reloaded when a cheap probe of the app store (experiments' cache version, count and
  newest ``updated_at``) changes.
* ``WarehouseStickyStore`` — a ``StickyStore`` over the exposures table, which already holds
  each unit's first variant (one row per experiment and unit).
* ``rebalance_bandit`` — Thompson-sampling weights written through ``update_experiment``.

Sticky lookups are only needed for experiments whose allocation (weights or coverage)
changed after they started: until then, hashing reproduces every unit's first assignment,
so the hot path of an unchanged experiment never touches the sticky store.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from splitlab.assignment import CompiledExperiment, ExperimentConfig, Namespace, VariantConfig
from splitlab.domain import ExperimentPatch, ExperimentSpec, ExperimentType, Principal, Role
from splitlab.domain.lifecycle import LIVE
from splitlab.errors import ConflictError, ValidationError
from splitlab.store.experiments import (
    get_experiment,
    metric_definitions,
    spec_from_row,
    update_experiment,
)
from splitlab.store.tables import AuditRow, CacheVersionRow, ExperimentRow
from splitlab.store.versions import EXPERIMENTS

if TYPE_CHECKING:
    from splitlab.services import Services
    from splitlab.warehouse import Warehouse

log = logging.getLogger(__name__)

ALLOCATION_FIELDS = ("variants", "coverage")
"""Audited changes that move units between variants (the only edits allowed while live)."""

BANDIT = Principal(username="bandit", role=Role.ADMIN)
"""The actor of every bandit weight change in the audit log."""


# ---------------------------------------------------------------- specs -> configs


def config_from_spec(spec: ExperimentSpec, *, active: bool = True) -> ExperimentConfig:
    """The assignment config of a stored experiment (seed, hash version, weights, coverage,
    namespace). ``active=False`` for an experiment that is not running."""
    return ExperimentConfig(
        key=spec.key,
        variants=tuple(VariantConfig(v.key, v.weight, v.payload) for v in spec.variants),
        seed=spec.seed or spec.key,
        hash_version=spec.hash_version,
        coverage=spec.coverage,
        namespace=(
            Namespace(spec.namespace.id, spec.namespace.start, spec.namespace.end)
            if spec.namespace
            else None
        ),
        active=active,
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def allocation_changed(*, session: Session, starts: Mapping[str, datetime | None]) -> set[str]:
    """Keys (of ``starts``: experiment key -> start time) whose weights or coverage were
    changed after the start. Only those need sticky lookups."""
    started = {key: at for key, at in starts.items() if at is not None}
    if not started:
        return set()
    rows = session.execute(
        select(AuditRow.entity_key, AuditRow.at, AuditRow.changes).where(
            AuditRow.entity == "experiment",
            AuditRow.action == "update",
            AuditRow.entity_key.in_(started),
        )
    )
    changed = set()
    for key, at, changes in rows:
        if (
            _aware(at) >= _aware(started[key])
            and changes
            and any(name in changes for name in ALLOCATION_FIELDS)
        ):
            changed.add(key)
    return changed


# ---------------------------------------------------------------- sticky store


@dataclass
class _StickyEntry:
    assignments: dict[str, str] = field(default_factory=dict)
    loaded_until: datetime | None = None  # newest ingested_at seen
    checked_at: float = 0.0  # monotonic time of the last refresh
    lock: threading.Lock = field(default_factory=threading.Lock)


class WarehouseStickyStore:
    """A ``StickyStore`` over the warehouse's exposures: each unit's first recorded variant.

    Entries of an experiment are loaded in full on first use, then refreshed incrementally
    (rows ingested since the last load, with an overlap) at most every ``refresh_interval``
    seconds; ``set`` adds a unit this process has just recorded. The seed is not part of
    the key: it cannot change once an experiment has exposures (a stopped experiment never
    restarts), so an experiment's exposures all belong to one seed.

    Memory grows with the exposed units of sticky experiments (~150 bytes a unit).
    """

    OVERLAP = timedelta(seconds=5)
    """Re-read this much before the newest row seen, for rows committed slightly out of
    order by concurrent writers (PostgreSQL with several server processes)."""

    def __init__(self, warehouse: Warehouse, *, refresh_interval: float = 2.0) -> None:
        self.warehouse = warehouse
        self.refresh_interval = refresh_interval
        self._entries: dict[str, _StickyEntry] = {}
        self._lock = threading.Lock()

    def _entry(self, experiment_key: str) -> _StickyEntry:
        entry = self._entries.get(experiment_key)
        if entry is None:
            with self._lock:
                entry = self._entries.setdefault(experiment_key, _StickyEntry())
        return entry

    def is_fresh(self, experiment_key: str) -> bool:
        entry = self._entries.get(experiment_key)
        return (
            entry is not None
            and entry.checked_at > 0
            and time.monotonic() - entry.checked_at < self.refresh_interval
        )

    def loaded(self, experiment_key: str) -> bool:
        entry = self._entries.get(experiment_key)
        return entry is not None and entry.checked_at > 0

    def refresh(self, experiment_key: str) -> None:
        """Load (or incrementally refresh) one experiment's stored assignments. Blocking."""
        entry = self._entry(experiment_key)
        with entry.lock:
            if self.is_fresh(experiment_key):
                return
            table = self.warehouse.exposures_table()
            query = table.filter(table.experiment_key == experiment_key)
            if entry.loaded_until is not None:
                query = query.filter(table.ingested_at >= entry.loaded_until - self.OVERLAP)
            rows = query.select("unit_id", "variant_key", "ingested_at").to_pyarrow()
            units = rows.column("unit_id").to_pylist()
            variants = rows.column("variant_key").to_pylist()
            # the warehouse holds the first variant: it wins over what this process set
            entry.assignments.update(zip(units, variants, strict=True))
            if rows.num_rows:
                newest = max(rows.column("ingested_at").to_pylist())
                if entry.loaded_until is None or newest > entry.loaded_until:
                    entry.loaded_until = _aware(newest)
            entry.checked_at = time.monotonic()

    def get(self, experiment_key: str, seed: str, unit_id: str) -> str | None:
        if experiment_key not in self._entries:
            self.refresh(experiment_key)
        return self._entry(experiment_key).assignments.get(unit_id)

    def set(self, experiment_key: str, seed: str, unit_id: str, variant_key: str) -> None:
        self._entry(experiment_key).assignments.setdefault(unit_id, variant_key)

    def assignments(self, experiment_key: str) -> dict[str, str]:
        """Every stored ``unit_id -> variant`` of one experiment (for bulk assignment)."""
        self.refresh(experiment_key)
        return dict(self._entry(experiment_key).assignments)


class RecentExposures:
    """(experiment, unit) pairs whose exposure this process saw committed, so a repeated
    assignment skips the write (the warehouse would report a duplicate anyway). Bounded:
    cleared when full, which only costs a few redundant writes."""

    def __init__(self, max_items: int = 1_000_000) -> None:
        self.max_items = max_items
        self._seen: set[tuple[str, str]] = set()

    def __contains__(self, pair: tuple[str, str]) -> bool:
        return pair in self._seen

    def add(self, pair: tuple[str, str]) -> None:
        if len(self._seen) >= self.max_items:
            self._seen.clear()
        self._seen.add(pair)


class ReadOnlySticky:
    """A view of a sticky store whose ``set`` does nothing: the API decides separately
    whether an assignment becomes sticky (only once its exposure is recorded)."""

    __slots__ = ("store",)

    def __init__(self, store: WarehouseStickyStore) -> None:
        self.store = store

    def get(self, experiment_key: str, seed: str, unit_id: str) -> str | None:
        return self.store.get(experiment_key, seed, unit_id)

    def set(self, experiment_key: str, seed: str, unit_id: str, variant_key: str) -> None:
        return None


# ---------------------------------------------------------------- live configs


@dataclass(frozen=True, slots=True)
class LiveExperiment:
    """A running experiment ready to assign: its config, compiled, and whether earlier
    exposures may disagree with hashing (weights or coverage changed since the start)."""

    config: ExperimentConfig
    compiled: CompiledExperiment
    sticky: bool
    type: str


@dataclass(frozen=True)
class AllocationSnapshot:
    """Everything assignment needs, swapped atomically on reload."""

    live: dict[str, LiveExperiment]
    statuses: dict[str, str]
    """Status of every experiment (to tell "not running" from "unknown")."""
    version: str
    sdk_body: bytes
    """The ``GET /api/sdk/config`` response body for this version."""

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


def load_snapshot(session: Session) -> AllocationSnapshot:
    """Read every experiment's status and the live ones' configs from the app store."""
    statuses = {
        key: status
        for key, status in session.execute(select(ExperimentRow.key, ExperimentRow.status))
    }
    rows = session.scalars(
        select(ExperimentRow)
        .where(ExperimentRow.status.in_([s.value for s in LIVE]))
        .order_by(ExperimentRow.key)
    ).all()
    specs = [spec_from_row(row) for row in rows]
    changed = allocation_changed(session=session, starts={s.key: s.start_at for s in specs})
    live = {}
    for spec in specs:
        config = config_from_spec(spec)
        live[spec.key] = LiveExperiment(config, config.compiled, spec.key in changed, spec.type)
    experiments = [item.config.to_dict() for item in live.values()]
    canonical = orjson.dumps(experiments, option=orjson.OPT_SORT_KEYS)
    version = hashlib.sha256(canonical).hexdigest()[:32]
    body = orjson.dumps({"experiments": experiments, "version": version})
    return AllocationSnapshot(live, statuses, version, body)


def _probe(session: Session) -> tuple[Any, ...]:
    """What changes whenever an experiment does: the experiments' cache version (bumped by
    every change made through Splitlab), and count and newest ``updated_at`` (for the rest)."""
    version = (
        select(CacheVersionRow.version).where(CacheVersionRow.name == EXPERIMENTS).scalar_subquery()
    )
    query = select(func.count(ExperimentRow.id), func.max(ExperimentRow.updated_at), version)
    return tuple(session.execute(query).one())


class Allocations:
    """The process-wide cache of live experiment configs.

    At most every ``check_interval`` seconds a request runs a cheap probe (``_probe``), and
    only when it changed are the configs reloaded, so a change made by another process takes
    effect within ``check_interval``. A change made through this process ``invalidate``s at
    once. An experiment the snapshot does not know as running is probed again before the
    answer (``current(fresh_after=...)``): a running experiment is never reported unknown.
    """

    def __init__(
        self,
        services: Services,
        *,
        check_interval: float = 0.5,
        sticky_refresh_interval: float = 2.0,
    ) -> None:
        self.services = services
        self.check_interval = check_interval
        self._sticky_refresh_interval = sticky_refresh_interval
        self._sticky: WarehouseStickyStore | None = None
        self.recorded = RecentExposures()
        self._snapshot: AllocationSnapshot | None = None
        self._token: tuple[Any, ...] | None = None
        self._checked_at = float("-inf")
        """When the probe behind the current snapshot started (monotonic)."""
        self._invalidated_at = float("-inf")
        self._lock = threading.Lock()
        self._task: asyncio.Future[AllocationSnapshot] | None = None

    @property
    def sticky(self) -> WarehouseStickyStore:
        if self._sticky is None:
            self._sticky = WarehouseStickyStore(
                self.services.warehouse, refresh_interval=self._sticky_refresh_interval
            )
        return self._sticky

    def invalidate(self) -> None:
        """Probe the app store again on the next request (after an in-process change); a
        probe running meanwhile does not count. Safe to call from any thread."""
        self._invalidated_at = time.monotonic()

    def _stale(self, fresh_after: float = float("-inf")) -> bool:
        checked = self._checked_at
        return (
            self._snapshot is None
            or checked < fresh_after
            or checked <= self._invalidated_at
            or time.monotonic() - checked >= self.check_interval
        )

    def refresh(self, fresh_after: float = float("-inf")) -> AllocationSnapshot:
        """Probe the app store and reload when something changed. Blocking."""
        with self._lock:
            if not self._stale(fresh_after):
                assert self._snapshot is not None
                return self._snapshot
            started = time.monotonic()
            with self.services.sessions() as session:
                token = _probe(session)
                if self._snapshot is None or token != self._token:
                    self._snapshot = load_snapshot(session)
                    self._token = token
            self._checked_at = started
            return self._snapshot

    async def current(self, *, fresh_after: float | None = None) -> AllocationSnapshot:
        """The current snapshot; concurrent requests share one probe when it is due.
        ``fresh_after`` (a ``time.monotonic()`` reading) asks for a snapshot probed no
        earlier than that, e.g. before answering that an experiment is not running."""
        after = float("-inf") if fresh_after is None else fresh_after
        for _ in range(3):  # a probe can be overtaken by an invalidation: try again, bounded
            if not self._stale(after):
                break
            loop = asyncio.get_running_loop()
            task = self._task
            if task is None or task.done() or task.get_loop() is not loop:
                task = self._task = asyncio.ensure_future(run_in_threadpool(self.refresh, after))
            await asyncio.shield(task)
            if fresh_after is None:
                break
        assert self._snapshot is not None
        return self._snapshot


def allocations_of(services: Services) -> Allocations:
    """The ``Allocations`` of this process (created on first use)."""
    found = services.extras.get("allocations")
    if found is None:
        found = services.extras["allocations"] = Allocations(services)
        services.changes.subscribe(EXPERIMENTS, found.invalidate)
    return found  # type: ignore[no-any-return]


# ---------------------------------------------------------------- bandits


@dataclass(frozen=True)
class Rebalance:
    """A bandit weight change: variant keys with their weights before and after."""

    key: str
    variants: tuple[str, ...]
    before: tuple[float, ...]
    after: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.key,
            "weights": {
                k: {"before": b, "after": a}
                for k, b, a in zip(self.variants, self.before, self.after, strict=True)
            },
        }


def _rounded(weights: Sequence[float], digits: int = 6) -> list[float]:
    """Weights rounded for a readable audit log, still summing to 1 (the largest absorbs
    the rounding, so the floor of every other arm is kept)."""
    rounded = [round(float(w), digits) for w in weights]
    largest = max(range(len(rounded)), key=rounded.__getitem__)
    rounded[largest] = round(1 - (sum(rounded) - rounded[largest]), digits + 2)
    return rounded


def rebalance_bandit(
    *,
    services: Services,
    key: str,
    posterior_means: Sequence[float],
    posterior_variances: Sequence[float],
    seed: int | None = 0,
    min_weight: float = 0.01,
    actor: Principal = BANDIT,
    reason: str = "",
) -> Rebalance:
    """Set a live bandit experiment's weights ∝ P(arm is best) (Thompson sampling, at least
    ``min_weight`` per arm), through ``update_experiment``: the change is audited with its
    before/after, and units already exposed keep their variant (sticky bucketing).

    ``posterior_means``/``posterior_variances`` are in variant order.
    """
    from splitlab.stats import thompson_weights

    with services.sessions.begin() as session:
        row = get_experiment(session=session, key=key)
        spec = spec_from_row(row)
        if spec.type is not ExperimentType.BANDIT:
            raise ConflictError(
                f"experiment {key!r} is of type {spec.type}, not bandit: its weights are fixed",
                details={"type": spec.type},
            )
        if row.status not in LIVE:
            raise ConflictError(
                f"experiment {key!r} is {row.status}: only a running bandit is rebalanced",
                details={"status": row.status},
            )
        arms = len(spec.variants)
        for name, values in (
            ("posteriorMeans", posterior_means),
            ("posteriorVariances", posterior_variances),
        ):
            if len(values) != arms:
                raise ValidationError(
                    f"{name}: {len(values)} values for {arms} variants",
                    details=[{"loc": [name], "msg": f"needs one value per variant ({arms})"}],
                )
            if not all(math.isfinite(v) for v in values):
                raise ValidationError(
                    f"{name}: every value must be a finite number",
                    details=[{"loc": [name], "msg": "must be finite numbers"}],
                )
        if any(v < 0 for v in posterior_variances):
            raise ValidationError(
                "posteriorVariances: a variance cannot be negative",
                details=[{"loc": ["posteriorVariances"], "msg": "must be zero or more"}],
            )
        try:
            weights = thompson_weights(
                posterior_means, posterior_variances, min_weight=min_weight, seed=seed
            )
        except ValueError as exc:
            raise ValidationError(
                f"cannot compute bandit weights: {exc}",
                details=[{"loc": ["posteriorVariances"], "msg": str(exc)}],
            ) from exc
        after = _rounded(weights.tolist())
        variants = [
            v.model_copy(update={"weight": w}) for v, w in zip(spec.variants, after, strict=True)
        ]
        update_experiment(
            session=session,
            key=key,
            patch=ExperimentPatch(variants=variants),
            actor=actor,
            reason=reason or "Thompson sampling rebalance",
        )
    allocations = services.extras.get("allocations")
    if allocations is not None:
        allocations.invalidate()
    return Rebalance(
        key,
        tuple(v.key for v in spec.variants),
        tuple(v.weight for v in spec.variants),
        tuple(after),
    )


@dataclass(frozen=True)
class BinaryPosteriors:
    """Beta(1 + conversions, 1 + non-conversions) posteriors per variant, as normals."""

    variants: tuple[str, ...]
    units: tuple[int, ...]
    conversions: tuple[int, ...]

    @property
    def means(self) -> list[float]:
        return [(c + 1) / (n + 2) for n, c in zip(self.units, self.conversions, strict=True)]

    @property
    def variances(self) -> list[float]:
        return [m * (1 - m) / (n + 3) for m, n in zip(self.means, self.units, strict=True)]


def binary_posteriors(*, services: Services, key: str) -> BinaryPosteriors:
    """Posteriors of the primary metric from the warehouse, for the simple case only: a
    binary metric without filter, window or capping — a unit converts when it has the
    metric's event at or after its first exposure; units exposed to two variants are left
    out. Anything else raises ``ValidationError``: send posteriors from the analysis."""
    from splitlab.domain import MetricKind

    with services.sessions() as session:
        row = get_experiment(session=session, key=key)
        spec = spec_from_row(row)
        primary = spec.metrics.primary
        # the version the experiment pinned when it started, as the analysis uses
        metric = metric_definitions(session=session, row=row)[primary] if primary else None
    simple = (
        metric is not None
        and metric.kind is MetricKind.BINARY
        and not metric.filter
        and metric.window_hours is None
        and not metric.window_start_hours
        and metric.value_field is None
    )
    if metric is None or not simple:
        raise ValidationError(
            f"experiment {key!r}: posteriors are computed here only for a binary primary "
            "metric without filter or window; send posteriorMeans and posteriorVariances",
            details=[{"loc": ["posteriorMeans"], "msg": "required for this primary metric"}],
        )
    warehouse = services.warehouse
    exposures = warehouse.exposures_table()
    exposures = exposures.filter(exposures.experiment_key == key)
    conflicts = warehouse.conflicts_table()
    conflicted = conflicts.filter(conflicts.experiment_key == key).select("unit_id")
    exposures = exposures.anti_join(conflicted, "unit_id")
    events = warehouse.events_table()
    events = events.filter(events.event_name == metric.event).select(
        event_unit=events.unit_id, occurred_at=events.occurred_at
    )
    converted = exposures.semi_join(
        events,
        [exposures.unit_id == events.event_unit, events.occurred_at >= exposures.exposed_at],
    )
    units = _per_variant(exposures)
    conversions = _per_variant(converted)
    names = tuple(v.key for v in spec.variants)
    return BinaryPosteriors(
        names,
        tuple(units.get(name, 0) for name in names),
        tuple(conversions.get(name, 0) for name in names),
    )


def _per_variant(table: Any) -> dict[str, int]:
    counted = table.group_by("variant_key").aggregate(n=table.count()).to_pyarrow()
    return dict(
        zip(counted.column("variant_key").to_pylist(), counted.column("n").to_pylist(), strict=True)
    )
