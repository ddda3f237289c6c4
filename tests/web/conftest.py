"""Logged-in clients of a test module's demo organisation: a module that defines a ``demo``
fixture (a seeded ``Services``, e.g. ``demo_helpers.open_demo``) gets ``ada`` (an admin)
and ``vic`` (a viewer) on it; a module may define its own instead."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from splitlab.services import Services
from tests.web.demo_helpers import logged_in


@pytest.fixture(scope="module")
def ada(demo: Services) -> Iterator[TestClient]:
    """An admin, logged in through the form."""
    with logged_in(demo, "ada") as client:
        yield client


@pytest.fixture(scope="module")
def vic(demo: Services) -> Iterator[TestClient]:
    """A viewer, logged in through the form."""
    with logged_in(demo, "vic") as client:
        yield client
