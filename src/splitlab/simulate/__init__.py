"""Scenario simulator: realistic exposures and events with known truth.

* ``generate(scenario, units=…, days=…, seed=…)`` -> ``SimulatedData``: Arrow tables of
  exposures and events (``/api/track`` column names) and the ground truth; no I/O.
* ``load_scenario(name_or_path)``, ``scenario_names()``, ``parse_scenario(text)``: the YAML
  contracts shipped in ``simulate/scenarios/`` or a user's own.
* ``simulate_into(services, …)`` (``simulate.run``): creates the metrics and a running
  experiment through the store, writes the data through the import path, saves truth.json.
"""

from splitlab.simulate.generator import SimulatedData, generate
from splitlab.simulate.scenario import Scenario, load_scenario, parse_scenario, scenario_names
from splitlab.simulate.truth import compute_truth

__all__ = [
    "Scenario",
    "SimulatedData",
    "compute_truth",
    "generate",
    "load_scenario",
    "parse_scenario",
    "scenario_names",
]
