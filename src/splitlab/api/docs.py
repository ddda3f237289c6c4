"""``/docs`` and ``/redoc`` served offline, and the error responses of the OpenAPI document.

Swagger UI and ReDoc come from the files the ``fastapi-offline`` package installs (no CDN:
the docs work on a machine without internet). Every operation of the document lists the
4xx answers it can give, each in the ``{"error": {...}}`` shape of ``api.errors``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/docs-assets"

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "machine-readable, e.g. not_found"},
                "message": {"type": "string", "description": "for people"},
                "details": {"description": "per-field problems ({loc, msg}) or context"},
            },
        }
    },
}

ERROR_DESCRIPTIONS = {
    400: "Malformed request (a JSON body that does not parse)",
    401: "No valid API key or session",
    403: "The key's scope or the user's role does not allow this",
    404: "No such experiment, metric or other resource",
    409: "Not allowed in the current state (e.g. a lifecycle transition)",
    413: "Body over SPLITLAB_MAX_BODY_BYTES (or too many items)",
    422: "Invalid input; details name each field",
}

UNAUTHENTICATED = frozenset({"/healthz"})


def error_codes(path: str, method: str, operation: dict[str, Any]) -> list[int]:
    """The 4xx statuses an operation can answer."""
    codes = {422}  # every route refuses a NUL in its URL, and most validate input
    if path not in UNAUTHENTICATED:
        codes |= {401, 403}
    if "requestBody" in operation:
        codes |= {400, 413}
    if path.startswith("/api/") and ("parameters" in operation or "requestBody" in operation):
        codes.add(404)  # a key in the path, the query or the body can name nothing
    if method != "get" and path.startswith("/api/"):
        codes.add(409)
    return sorted(codes)


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the error responses to every operation of ``schema`` (in place), replacing
    FastAPI's ``{"detail": [...]}`` 422 with ours."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR_SCHEMA
    reference = {"$ref": "#/components/schemas/Error"}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for code in error_codes(path, method, operation):
                responses[str(code)] = {
                    "description": ERROR_DESCRIPTIONS[code],
                    "content": {"application/json": {"schema": reference}},
                }
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema


def install(app: FastAPI) -> None:
    """Serve the docs pages from installed files and document the error responses."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{redirect_url}",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @app.get(redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )

    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
