"""The server's periodic re-analysis of running experiments.

The interval is ``SPLITLAB_ANALYSIS_REFRESH_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from splitlab.analysis.service import refresh_running

if TYPE_CHECKING:
    from splitlab.services import Services

log = logging.getLogger("splitlab.analysis")


async def refresh_loop(services: Services, interval: float) -> None:
    """Every ``interval`` seconds, analyse running experiments in a worker thread; an error in
    one round is logged and the loop goes on."""
    while True:
        await asyncio.sleep(interval)
        try:
            fresh = await asyncio.to_thread(refresh_running, services=services)
            if fresh:
                log.info("refreshed %d analysis snapshot(s)", fresh)
        except Exception:
            log.exception("background analysis refresh failed")


@contextlib.asynccontextmanager
async def periodic_refresh(services: Services) -> AsyncIterator[None]:
    """Run :func:`refresh_loop` for the lifetime of the block (nothing when turned off)."""
    interval = services.settings.analysis_refresh_seconds
    if interval <= 0:
        yield
        return
    task = asyncio.create_task(refresh_loop(services, interval))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
