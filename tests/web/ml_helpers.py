"""Shared set-up of the ML views' tests: demo experiments with model, prompt and canary
payloads (``tests.web.demo_helpers``) with the scheduler and the background refresh off."""

from __future__ import annotations

from pathlib import Path

from splitlab.services import Services
from tests.web import demo_helpers

ML_KEYS = ("distilled-ranker", "support-prompt-steps", "payments-4-2-canary")


def open_demo(home: Path, keys: tuple[str, ...] = ML_KEYS) -> Services:
    """A fresh SQLite store with these demo experiments seeded and analysed, and users."""
    return demo_helpers.open_demo(home, keys, scheduler_seconds=0, analysis_refresh_seconds=0)
