"""The curated top-level API: every name in ``__all__`` resolves, and nothing else is promised."""

from __future__ import annotations

import importlib

import splitlab

EXPECTED = {
    "__version__",
    "Client",
    "ExperimentSpec",
    "MetricDefinition",
    "Settings",
    "SplitlabError",
    "Status",
    "assignment",
    "create_app",
    "domain",
    "stats",
}


def test_all_is_the_documented_list() -> None:
    assert set(splitlab.__all__) == EXPECTED


def test_every_name_resolves() -> None:
    module = importlib.reload(splitlab)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
