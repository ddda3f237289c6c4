"""Request bodies and URLs before any route sees them: size, JSON syntax, nesting, NUL.

``decode_json`` is the one JSON decoder of the API (the bare ingestion routes and
``/api/assign`` call it; ``BodyGuard`` checks every other JSON body with it), so every route
answers a broken body the same way: 400 for JSON that does not parse, 422 for JSON nested
deeper than ``MAX_BODY_DEPTH``, 413 for a body over ``SPLITLAB_MAX_BODY_BYTES`` — whether it
declared its length or arrived chunked.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from splitlab.errors import PayloadTooLargeError, SplitlabError, ValidationError

MAX_BODY_DEPTH = 64
"""Nesting levels of a JSON body of the API (a variant payload may use 32 of them)."""


def decode_json(body: bytes) -> Any:
    """The JSON value of ``body``. orjson first (fast, strict); what it refuses is read again
    by the standard library, which accepts ``NaN``, ``Infinity`` and ``1e400`` (as infinity)
    so that validation can name the field holding them (422) instead of refusing the body."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        problem = str(exc)
    try:
        return json.loads(body)
    except RecursionError:
        raise too_deep("too many levels") from None
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        raise SplitlabError(
            f"malformed JSON body: {problem}", details=[{"loc": [], "msg": problem}]
        ) from None


def too_deep(levels: str = f"more than {MAX_BODY_DEPTH} levels") -> ValidationError:
    message = f"the JSON body is nested {levels} deep"
    return ValidationError(message, details=[{"loc": [], "msg": message}])


def depth_exceeds(value: Any, limit: int) -> bool:
    """Whether ``value`` nests objects/arrays more than ``limit`` levels (iterative)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return False


def _has_nul(scope: Scope) -> bool:
    return "\x00" in scope["path"] or b"\x00" in unquote_to_bytes(scope.get("query_string", b""))


class BodyGuard:
    """ASGI middleware: refuse a body over ``limit`` bytes with 413 (by Content-Length, or as
    soon as a chunked body passes it — the route's own answer to its cut-off body is
    replaced), a JSON body that does not decode (400) or nests too deep (422), and a URL
    with a NUL character (422: no key or query can hold one)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _has_nul(scope):
            message = "the URL must not contain NUL characters"
            error = ValidationError(message, details=[{"loc": ["url"], "msg": message}])
            await self._answer(error, scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._answer(self._too_large(), scope, receive, send)
            return
        if _is_json(scope):
            await self._json(scope, receive, send)
        else:
            await self._streamed(scope, receive, send)

    def _too_large(self) -> PayloadTooLargeError:
        return PayloadTooLargeError(
            f"request body exceeds the limit of {self.limit} bytes (SPLITLAB_MAX_BODY_BYTES)"
        )

    async def _answer(
        self, error: SplitlabError, scope: Scope, receive: Receive, send: Send
    ) -> None:
        await JSONResponse(error.to_dict(), status_code=error.status)(scope, receive, send)

    async def _json(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read the whole JSON body, check it, and hand the route the same bytes."""
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                await self._answer(self._too_large(), scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body:
            try:
                if depth_exceeds(decode_json(body), MAX_BODY_DEPTH):
                    raise too_deep()
            except SplitlabError as error:
                await self._answer(error, scope, receive, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect

        await self.app(scope, replay, send)

    async def _streamed(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the body through as it arrives, counting; past the limit the route gets an
        error while reading, and the client gets 413 (unless the answer already started)."""
        seen = 0
        exceeded = started = False

        async def counting_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                exceeded = True
                raise self._too_large()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # the route's answer to a body it could not read: ours goes out below
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await self._answer(self._too_large(), scope, receive, send)
