"""The JSON API: FastAPI routers, request/response schemas and auth dependencies."""

from splitlab.api import analysis, assign, experiments, health, ingest, metrics, upload

ROUTERS = [
    health.router,
    experiments.router,
    metrics.router,
    ingest.router,
    upload.router,
    assign.router,
    analysis.router,
]
