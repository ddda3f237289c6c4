"""Liveness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from splitlab import __version__
from splitlab.api.deps import ServicesDep
from splitlab.store.migrate import current_revision

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(services: ServicesDep) -> dict[str, Any]:
    return {
        "status": "ok",
        "version": __version__,
        "schema": current_revision(services.engine),
        "auth": services.settings.auth,
    }
