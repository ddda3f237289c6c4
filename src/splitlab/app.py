"""``create_app()``: the composition root of the server (API + dashboard)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from splitlab import __version__
from splitlab.api import (
    analysis,
    assign,
    experiments,
    health,
    ingest,
    metrics,
    power,
    upload,
    users,
)
from splitlab.api.bodies import BodyGuard
from splitlab.api.decisions import router as policy_router
from splitlab.api.decisions_routes import router as decisions_router
from splitlab.api.docs import install as install_docs
from splitlab.api.errors import install_error_handlers
from splitlab.api.factorial import router as factorial_router
from splitlab.api.program import router as program_router
from splitlab.api.ramps import router as ramps_router
from splitlab.api.reports import router as reports_router
from splitlab.config import Settings
from splitlab.services import Services
from splitlab.web import calculator, common, experiment, fleet, intake, pages
from splitlab.web import canary as canary_page
from splitlab.web import models as models_page
from splitlab.web import program as program_page
from splitlab.web.render import render_error

RAW_ENDPOINTS = ingest.RAW_ENDPOINTS
ROUTERS = [
    health.router,
    experiments.router,
    metrics.router,
    ingest.router,
    upload.router,
    assign.router,
    analysis.router,
    users.router,
    reports_router,
    power.router,
    decisions_router,
    policy_router,
    ramps_router,
    program_router,
    factorial_router,
]

STATIC = Path(__file__).parent / "web" / "static"


class SplitlabApp(FastAPI):
    """FastAPI, except that ``POST /api/track`` and ``POST /api/events`` go straight to their
    bare ASGI endpoints, ahead of the middleware stack and the router: those hot paths enforce
    authentication, the body limit and the error shapes themselves (``api.ingest``)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = RAW_ENDPOINTS.get(scope["path"])
            if endpoint is not None:
                scope["app"] = self
                await endpoint(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> FastAPI:
    """Build the app. Settings are read here (never at import time); the schema must be current."""
    settings = settings or (services.settings if services else Settings())
    settings.check_auth_binding()
    services = services or Services.open(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services.warehouse.start()  # the server owns the warehouse and its writer thread
        from splitlab.analysis.background import periodic_refresh
        from splitlab.decisions.scheduler import periodic_scheduler
        from splitlab.decisions.webhooks import webhook_worker

        async with (
            periodic_refresh(services),
            periodic_scheduler(services),
            webhook_worker(services),
        ):
            yield
        services.close()

    app = SplitlabApp(
        title="Splitlab",
        version=__version__,
        description="Experimentation platform API: experiments, metrics, lifecycle and reviews.",
        lifespan=lifespan,
        docs_url=None,  # served by api.docs from installed files, not from a CDN
        redoc_url=None,
    )
    app.state.services = services
    install_error_handlers(app, html=render_error)
    for router in ROUTERS:
        app.include_router(router)
    app.include_router(pages.router)
    app.include_router(intake.router)  # /experiments/new, before /experiments/{key}
    app.include_router(calculator.router)
    app.include_router(fleet.router)
    app.include_router(models_page.router)  # /models, /experiments/{key}/ml
    app.include_router(program_page.router)  # /program/{view}
    app.include_router(canary_page.router)  # /canary/{key}, its event stream and rollback
    # after every other page router: /experiments/{key} would otherwise catch /experiments/new
    app.include_router(experiment.router)
    app.include_router(common.assets)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    install_docs(app)
    app.add_middleware(BodyGuard, limit=settings.max_body_bytes)
    return app
