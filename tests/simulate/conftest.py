"""One data directory holding every scenario at test size, simulated and analysed once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from splitlab.config import Settings
from splitlab.services import Services
from splitlab.simulate import SimulatedData, generate, load_scenario, scenario_names
from splitlab.store.db import make_engine
from splitlab.store.migrate import upgrade

START = datetime(2024, 5, 1, tzinfo=UTC)
FULL_SIZE = {"srm_invalid"}
"""Scenarios run at their own size: a 3% loss needs ~80,000 units to be a clear SRM."""
TEST_UNITS = 10_000


def units_for(name: str) -> int:
    """The size each scenario runs at in the tests (with its documented seed)."""
    scenario = load_scenario(name)
    return scenario.units if name in FULL_SIZE else min(scenario.units, TEST_UNITS)


def open_services(home: Path) -> Services:
    settings = Settings(home=home, secret_key="test-secret", auth="on")
    engine = make_engine(settings.resolved_database_url())
    upgrade(engine)
    engine.dispose()
    return Services.open(settings)


def analysed_scenario(
    home: Path, name: str, *, units: int, recommend: bool = False, novelty: bool = False
) -> Any:
    """Scenario ``name`` at ``units`` units, running, imported and analysed in a new home:
    its snapshot (with ``novelty``, with the days-since-exposure view beside it), or
    (snapshot, recommendation) with ``recommend``."""
    from splitlab.analysis import analyze
    from splitlab.analysis.novelty import exposure_day_view
    from splitlab.decisions.service import recommend_experiment
    from splitlab.simulate.run import ensure_running_experiment, import_simulated

    services = open_services(home)
    try:
        data = generate(name, units=units, start=START)
        ensure_running_experiment(services, data)
        import_simulated(services, [data])
        snapshot = analyze(services=services, key=name)
        if novelty:
            snapshot = exposure_day_view(services=services, snapshot=snapshot)
        if not recommend:
            return snapshot
        return snapshot, recommend_experiment(services=services, key=name)
    finally:
        services.close()


@pytest.fixture(scope="package")
def simulated(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Services, dict[str, SimulatedData], dict[str, dict[str, Any]]]]:
    """Every scenario: its experiment created and running, its data imported, analysed."""
    from splitlab.analysis import analyze
    from splitlab.simulate.run import ensure_running_experiment, import_simulated

    services = open_services(tmp_path_factory.mktemp("simulated"))
    runs = {name: generate(name, units=units_for(name), start=START) for name in scenario_names()}
    for data in runs.values():
        ensure_running_experiment(services, data)
    import_simulated(services, list(runs.values()))
    # the JSON form, as an API client reads it
    snapshots = {name: analyze(services=services, key=name).to_json() for name in runs}
    yield services, runs, snapshots
    services.close()
