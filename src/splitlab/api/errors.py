"""One place that turns every error into ``{"error": {"code", "message", "details"}}``.

Unexpected exceptions too: the client gets the shape, a status 500 and an incident id; the
traceback (with server paths and SQL) goes to the log under that id, never into the body.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from splitlab.errors import SplitlabError, ValidationError

log = logging.getLogger("splitlab.api")

ErrorPage = Callable[[Request, SplitlabError], Response]
"""Renders an error as an HTML page (the dashboard's, given by the app)."""

HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
}


class InternalError(SplitlabError):
    """What the client learns of an unexpected failure: that it happened, and its incident."""

    status = 500
    code = "internal_error"


def internal_error(exc: BaseException, *, method: str, path: str) -> InternalError:
    """Log ``exc`` with its traceback under a new incident id; the error to answer with."""
    incident = uuid.uuid4().hex[:12]
    log.error("unexpected error (incident %s) on %s %s", incident, method, path, exc_info=exc)
    return InternalError(
        f"unexpected server error (incident {incident}); the server log has the details",
        details={"incident": incident},
    )


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api") and "text/html" in request.headers.get(
        "accept", ""
    )


def error_response(
    request: Request, error: SplitlabError, html: ErrorPage | None = None
) -> Response:
    """The error as JSON, or as ``html``'s page for a browser asking for a dashboard page."""
    if html is not None and _wants_html(request):
        try:
            return html(request, error)
        except Exception:  # the error page itself failed: answer in JSON
            log.exception("error page failed for %s", request.url.path)
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return JSONResponse(error.to_dict(), status_code=error.status, headers=headers)


def install_error_handlers(app: FastAPI, *, html: ErrorPage | None = None) -> None:
    """Answer every error in the one shape; ``html`` renders those of dashboard pages."""

    @app.exception_handler(SplitlabError)
    async def _splitlab(request: Request, exc: SplitlabError) -> Response:
        return error_response(request, exc, html)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        details = []
        for err in exc.errors():
            loc = list(err.get("loc", ()))
            if loc and loc[0] == "body":
                loc = loc[1:]
            details.append({"loc": loc, "msg": err.get("msg", ""), "type": err.get("type", "")})
        if any(d["type"] == "json_invalid" for d in details):
            error: SplitlabError = SplitlabError("malformed JSON body", details=details)
        else:
            summary = "; ".join(
                f"{'.'.join(str(p) for p in d['loc']) or '(body)'}: {d['msg']}" for d in details
            )
            error = ValidationError(f"invalid input: {summary}", details=details)
        return error_response(request, error, html)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        error = SplitlabError(str(exc.detail), details=None)
        error.status = exc.status_code
        error.code = HTTP_CODES.get(exc.status_code, "error")
        return error_response(request, error, html)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        error = internal_error(exc, method=request.method, path=request.url.path)
        return error_response(request, error, html)
