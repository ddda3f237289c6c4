"""Splitlab: an open-source experimentation platform, from hypothesis to ship/kill decision.

The library surface a user needs, imported lazily so ``import splitlab`` stays cheap::

    from splitlab import Settings, create_app, ExperimentSpec, MetricDefinition
    from splitlab import stats            # the statistics engine
    from splitlab import Client           # the SDK (local evaluation, batched tracking)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Settings": "splitlab.config",
    "create_app": "splitlab.app",
    "SplitlabError": "splitlab.errors",
    "ExperimentSpec": "splitlab.domain",
    "MetricDefinition": "splitlab.domain",
    "Status": "splitlab.domain",
    "Client": "splitlab.client",
}
_MODULES = {"stats", "assignment", "domain"}

__all__ = ["__version__", *sorted(_EXPORTS), *sorted(_MODULES)]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _MODULES:
        return importlib.import_module(f"splitlab.{name}")
    raise AttributeError(f"module 'splitlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
