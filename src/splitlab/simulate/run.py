"""Put a simulated run into Splitlab: metrics and a running experiment through the store's
audited service functions, then exposures and events through the bulk import path of
``splitlab import`` (validated and deduplicated in the warehouse; through a running server's
``POST /api/events`` when it owns the DuckDB file), and ``truth.json`` beside the run.

This is the one place of ``simulate/`` that touches the app store: the generator itself only
knows the domain, assignment and the warehouse's column names.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from splitlab.domain import ExperimentSpec, Principal, ReviewDecision, Role, Status
from splitlab.errors import ConflictError, NotFoundError
from splitlab.simulate.generator import SimulatedData

if TYPE_CHECKING:
    from splitlab.services import Services

SIMULATOR = Principal(username="simulate", role=Role.ADMIN)
"""Who the simulator's store changes are recorded as (audit actor ``simulate``)."""


@dataclass
class RunReport:
    key: str
    truth_path: Path
    exposures: dict[str, Any] = field(default_factory=dict)
    events: dict[str, Any] = field(default_factory=dict)
    export_dir: Path | None = None
    created: bool = True


def runs_dir(services: Services) -> Path:
    """Where runs keep their truth: ``HOME/simulations``."""
    return services.settings.home / "simulations"


def ensure_running_experiment(
    services: Services,
    data: SimulatedData,
    *,
    actor: Principal = SIMULATOR,
    at: datetime | None = None,
) -> bool:
    """Create the run's metrics and its experiment (and the scenario's concurrent experiment,
    if any), approved and running from ``data.start`` (all audited as ``actor``); True when
    the run's experiment was created, False when it already runs. ``at`` back-dates the
    store entries."""
    created = _ensure_running(services, data, data.spec, actor=actor, at=at)
    if data.concurrent is not None:
        _ensure_running(services, data, data.concurrent, actor=actor, at=at)
    return created


def _ensure_running(
    services: Services,
    data: SimulatedData,
    spec: ExperimentSpec,
    *,
    actor: Principal,
    at: datetime | None,
) -> bool:
    from splitlab.store import experiments as repo
    from splitlab.store import metrics as metrics_repo

    with services.sessions.begin() as session:
        for definition in data.scenario.metrics:
            metrics_repo.upsert_metric(session=session, definition=definition, actor=actor)
        try:
            row = repo.get_experiment(session=session, key=spec.key)
        except NotFoundError:
            row = None
        if row is not None:
            if row.status not in (Status.RUNNING, Status.ROLLING_OUT):
                raise ConflictError(
                    f"experiment {spec.key!r} exists and is {row.status}: simulated data can "
                    "only go into a running experiment (pass another --key)",
                    details={"key": spec.key, "status": row.status},
                )
            return False
        repo.create_experiment(session=session, spec=spec, actor=actor, at=at)
        repo.transition(
            session=session,
            key=spec.key,
            to=Status.REVIEW,
            actor=actor,
            reason=f"simulated scenario {data.scenario.name}",
            at=at,
        )
        repo.review(
            session=session,
            key=spec.key,
            reviewer=actor,
            decision=ReviewDecision.APPROVE,
            comment=f"simulated data (scenario {data.scenario.name}, seed {data.seed})",
            at=at,
        )
        repo.transition(
            session=session,
            key=spec.key,
            to=Status.RUNNING,
            actor=actor,
            reason="simulation starts",
            at=at,
        )
    return True


def write_parquet(runs: Sequence[SimulatedData], folder: Path) -> tuple[Path, Path]:
    """``exposures.parquet`` and ``events.parquet`` of one or more runs in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    exposures, events = folder / "exposures.parquet", folder / "events.parquet"
    tables = [t for r in runs for t in (r.exposures, r.concurrent_exposures) if t is not None]
    pq.write_table(pa.concat_tables(tables), exposures, compression="none")
    pq.write_table(
        pa.concat_tables([r.events for r in runs]),
        events,
        compression="none",
        row_group_size=1_000_000,
    )
    return exposures, events


def import_run(services: Services, exposures: Path, events: Path) -> tuple[Any, Any]:
    """Import both files as ``splitlab import`` does (reports of exposures and events)."""
    reports = [
        services.import_file(path, kind=kind)
        for kind, path in (("exposures", exposures), ("events", events))
    ]
    return reports[0], reports[1]


def import_simulated(
    services: Services, runs: Sequence[SimulatedData], *, export: Path | None = None
) -> tuple[Any, Any]:
    """Import the data of ``runs`` (experiments already running) in one import per kind;
    ``export`` keeps the Parquet files there, else they go to a temporary folder."""
    folder = export if export is not None else Path(tempfile.mkdtemp(prefix="splitlab-sim-"))
    try:
        return import_run(services, *write_parquet(runs, folder))
    finally:
        if export is None:
            shutil.rmtree(folder, ignore_errors=True)


def save_truth(services: Services, data: SimulatedData) -> Path:
    folder = runs_dir(services) / data.key
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "truth.json"
    path.write_text(json.dumps(data.truth, indent=2, sort_keys=False) + "\n")
    return path


def simulate_into(
    services: Services,
    data: SimulatedData,
    *,
    export: Path | None = None,
    actor: Principal = SIMULATOR,
    at: datetime | None = None,
) -> RunReport:
    """Create the experiment of ``data`` (unless it runs already), import its data through
    the bulk import path, and save ``truth.json``; ``export`` keeps the Parquet files."""
    created = ensure_running_experiment(services, data, actor=actor, at=at)
    exposures, events = import_simulated(services, [data], export=export)
    return RunReport(
        key=data.key,
        truth_path=save_truth(services, data),
        exposures=exposures.to_dict(),
        events=events.to_dict(),
        export_dir=export,
        created=created,
    )
