"""One error root for the whole package; each subclass carries its HTTP status and code."""

from __future__ import annotations

from typing import Any

MAX_MESSAGE_CHARS = 2_000
"""Longest error message sent to a client (a message quoting a huge input is cut)."""
MAX_DETAIL_CHARS = 200
"""Longest string inside ``details`` (e.g. the key a 404 could not find)."""


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def _clip_details(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return _clip(value, MAX_DETAIL_CHARS)
    if depth > 4:
        return value
    if isinstance(value, dict):
        return {k: _clip_details(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clip_details(v, depth + 1) for v in value]
    return value


class SplitlabError(Exception):
    """Base of every error Splitlab raises on purpose. ``status`` maps it onto HTTP."""

    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The ``{"error": ...}`` body; long strings are cut, so no answer echoes a huge input."""
        return {
            "error": {
                "code": self.code,
                "message": _clip(self.message, MAX_MESSAGE_CHARS),
                "details": _clip_details(self.details),
            }
        }


class ValidationError(SplitlabError):
    """Input that does not satisfy the contract; ``details`` lists ``{loc, msg}`` per field."""

    status = 422
    code = "validation_error"


class NotFoundError(SplitlabError):
    status = 404
    code = "not_found"


class ConflictError(SplitlabError):
    """A request that is well formed but not allowed in the current state."""

    status = 409
    code = "conflict"


class TransitionError(ConflictError):
    """A lifecycle transition that the transition table or a guard forbids."""

    code = "transition_not_allowed"


class AuthenticationError(SplitlabError):
    status = 401
    code = "unauthenticated"


class PermissionDeniedError(SplitlabError):
    status = 403
    code = "forbidden"


class PayloadTooLargeError(SplitlabError):
    status = 413
    code = "payload_too_large"


class ConfigurationError(SplitlabError):
    """A setting or environment that prevents Splitlab from starting."""

    status = 500
    code = "configuration_error"


class SchemaOutdatedError(ConfigurationError):
    code = "schema_outdated"


def from_pydantic(exc: Any, *, prefix: tuple[str | int, ...] = ()) -> ValidationError:
    """Turn a pydantic ``ValidationError`` into ours, keeping every field path."""
    details = [
        {"loc": [*prefix, *err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]
    summary = "; ".join(
        f"{'.'.join(str(p) for p in d['loc']) or '(root)'}: {d['msg']}" for d in details
    )
    return ValidationError(f"invalid input: {summary}", details=details)
