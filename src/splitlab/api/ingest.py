"""Ingestion: ``POST /api/track`` (one item) and ``POST /api/events`` (a batch).

Lean on purpose — these are the hot paths: the body is parsed with orjson, items are
validated by ``splitlab.warehouse.validation`` (pure functions), experiments and API keys are
looked up through short-lived caches, and the warehouse's group-commit writer acknowledges
an item only after its transaction committed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from starlette.requests import ClientDisconnect
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from splitlab.api.bodies import decode_json
from splitlab.api.caches import Refreshing, cached_principal
from splitlab.api.errors import internal_error
from splitlab.domain import Principal
from splitlab.domain.summary import ExperimentSummary
from splitlab.errors import (
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    SplitlabError,
    ValidationError,
)
from splitlab.services import Services
from splitlab.store.experiments import get_experiment
from splitlab.store.live import experiment_summary
from splitlab.store.versions import EXPERIMENTS
from splitlab.warehouse.columnar import parse_batch
from splitlab.warehouse.facts import ItemStatus
from splitlab.warehouse.validation import (
    MAX_ABS_VALUE,
    MAX_PROPS_DEPTH,
    MAX_TEXT,
    clean_key,
    error_entry,
    from_us,
    now_us,
    parse_item,
)

router = APIRouter(tags=["ingest"])

EXPERIMENT_FIELDS = ("experimentId", "experimentKey")


def experiment_cache(services: Services) -> Refreshing[ExperimentSummary | None]:
    """Experiment summaries by key (None: unknown), shared by the ingestion paths. A running
    experiment is reused for ``ingest_cache_seconds`` (refreshed in the background after
    that) unless it changes: a change through this process clears the cache at once, one
    through another process within that delay (``StoreVersions``). An unknown or
    not-running one is looked up again on every request, so an experiment that was just
    started is accepted at once."""
    cache = services.experiment_cache
    if cache is None:

        def load(keys: frozenset[str]) -> dict[str, ExperimentSummary | None]:
            found: dict[str, ExperimentSummary | None] = {}
            with services.sessions() as session:
                for key in keys:
                    try:
                        row = get_experiment(session=session, key=key)
                        found[key] = experiment_summary(session=session, row=row)
                    except NotFoundError:
                        found[key] = None
            return found

        cache = services.experiment_cache = Refreshing(
            services.settings.ingest_cache_seconds,
            load,
            usable=lambda summary: summary is not None and summary.accepting,
        )
        services.changes.subscribe(EXPERIMENTS, cache.clear)
    return cache


async def ingestor(request: Request, services: Services) -> Principal:
    """The caller, who must be allowed to ingest (API key scope ingest/admin, or auth off)."""
    principal = await cached_principal(request, services)
    if not principal.can_ingest():
        raise PermissionDeniedError(
            "ingestion needs an API key with scope ingest or admin",
            details={"scope": principal.scope},
        )
    return principal


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The request body, refused with 413 over ``limit`` bytes — by Content-Length or while
    streaming, with the messages of ``bodies.BodyGuard`` (these routes are served ahead of it)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            if value.isdigit() and int(value) > limit:
                raise PayloadTooLargeError(
                    f"request body exceeds the limit of {limit} bytes (SPLITLAB_MAX_BODY_BYTES)"
                )
            break
    chunks: list[bytes] = []
    seen = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        seen += len(chunk)
        if seen > limit:
            raise PayloadTooLargeError(f"request body exceeds {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _json_body(request: Request, services: Services) -> Any:
    body = await read_body(request.scope, request.receive, services.settings.max_body_bytes)
    return decode_json(body)  # NaN/Infinity are read, then refused per field


def _experiment_keys(items: list[Any]) -> set[str]:
    """The experiment keys to look up: only ones validation could accept (a key with NUL
    would fail the store's query, and with it every request sharing that lookup)."""
    keys = set()
    for item in items:
        if isinstance(item, dict):
            for name in EXPERIMENT_FIELDS:
                value = item.get(name)
                if isinstance(value, str):
                    if clean_key(value):
                        keys.add(value.strip())
                    break
    return keys


ITEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["userKey", "eventType"],
    "properties": {
        "experimentKey": {"type": "string", "description": "experiment key (or experimentId)"},
        "experimentId": {"type": "string", "description": "alias of experimentKey"},
        "variantKey": {"type": "string", "description": "variant key (or variantId)"},
        "variantId": {"type": "string", "description": "alias of variantKey"},
        "userKey": {
            "type": "string",
            "maxLength": MAX_TEXT,
            "description": "the unit (user) id; keys have no control characters (e.g. NUL)",
        },
        "eventType": {
            "type": "string",
            "maxLength": MAX_TEXT,
            "description": '"exposure" records an exposure; any other name a metric event',
        },
        "value": {
            "type": "number",
            "minimum": -MAX_ABS_VALUE,
            "maximum": MAX_ABS_VALUE,
            "description": "finite number (sum/mean/quantile metrics)",
        },
        "eventId": {
            "type": "string",
            "maxLength": MAX_TEXT,
            "description": "idempotency key; derived from (experiment, user, eventType) if absent",
        },
        "occurredAt": {
            "oneOf": [{"type": "string", "format": "date-time"}, {"type": "number"}],
            "description": "ISO 8601 (naive = UTC) or epoch seconds/milliseconds, from "
            "1970-01-01 to 5 minutes ahead of the server; default now",
        },
        "props": {
            "type": "object",
            "description": f"properties (≤ 8 KiB as JSON, ≤ {MAX_PROPS_DEPTH} levels, no NUL "
            "in strings); or properties",
        },
    },
    "example": {
        "experimentKey": "checkout",
        "variantKey": "one-page",
        "userKey": "u-123",
        "eventType": "purchase",
        "value": 19.99,
        "eventId": "order-9001",
        "props": {"country": "NL"},
    },
}
"""JSON schema of one tracking item (documentation: validation is ``validation.parse_item``)."""


def _body_doc(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


async def track_item(request: Request) -> dict[str, Any]:
    """Validate and write one item; the response payload once it committed."""
    services: Services = request.app.state.services
    experiments = experiment_cache(services)
    await ingestor(request, services)
    item = await _json_body(request, services)
    await experiments.ensure(_experiment_keys([item]))
    fact = parse_item(item, lookup=experiments.get, now=now_us())
    # everything the answer needs is computed before the write: once it committed, the
    # answer must say so
    occurred = from_us(fact.occurred_us).isoformat().replace("+00:00", "Z")
    (result,) = await services.warehouse.submit([fact])
    payload: dict[str, Any] = {
        "success": True,
        "eventId": result.event_id,
        "duplicate": result.status is ItemStatus.DUPLICATE,
        "occurredAt": occurred,
    }
    if result.conflict:
        payload["conflict"] = True
    return payload


async def record_batch(request: Request) -> dict[str, Any]:
    """Validate a batch, write its valid items, report on every item."""
    services: Services = request.app.state.services
    experiments = experiment_cache(services)
    await ingestor(request, services)
    body = await _json_body(request, services)
    items = body.get("events") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise ValidationError(
            "events: the body must be an object with an 'events' array",
            details=[{"loc": ["events"], "msg": "required array"}],
        )
    limit = services.settings.ingest_max_batch_items
    if len(items) > limit:
        raise PayloadTooLargeError(
            f"events: {len(items)} items; at most {limit} per request "
            "(SPLITLAB_INGEST_MAX_BATCH_ITEMS)",
            details=[{"loc": ["events"], "msg": f"at most {limit} items"}],
        )
    await experiments.ensure(_experiment_keys(items))
    parsed = parse_batch(items, lookup=experiments.get, now=now_us())
    facts, positions = parsed.facts, parsed.positions
    results: list[dict[str, Any]] = [{"index": index} for index in range(len(items))]
    for index, fact in zip(positions, facts, strict=True):
        results[index] |= {"status": "accepted", "eventId": fact.event_id}
    for index, error in parsed.errors.items():
        item = items[index]
        results[index] |= {
            "status": "rejected",
            "eventId": item.get("eventId") if isinstance(item, dict) else None,
            "error": error_entry(error),
        }
    written = await services.warehouse.submit(facts) if facts else []
    duplicates = 0
    for index, outcome in zip(positions, written, strict=True):
        entry = results[index]
        if outcome.status is ItemStatus.DUPLICATE:
            entry["status"] = "duplicate"
            duplicates += 1
        if outcome.conflict:
            entry["conflict"] = True
    rejected = len(items) - len(facts)
    return {
        "accepted": len(facts) - duplicates,
        "duplicates": duplicates,
        "rejected": rejected,
        "results": results,
    }


Handler = Callable[[Request], Awaitable[dict[str, Any]]]

JSON_HEADER = (b"content-type", b"application/json")


class RawEndpoint:
    """A handler served as a bare ASGI app: no FastAPI request/dependency machinery, which
    costs more than the handler itself on these hot paths. Answers errors in the same
    ``{"error": …}`` shape as ``api.errors``, an unexpected failure too (500, logged)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [JSON_HEADER]
        try:
            status, body = 200, orjson.dumps(await self.handler(Request(scope, receive)))
        except ClientDisconnect:  # gone before its body arrived (e.g. a load generator stopping)
            return
        except SplitlabError as error:
            status, body = error.status, orjson.dumps(error.to_dict(), default=str)
            if status == 401:
                headers.append((b"www-authenticate", b"Bearer"))
        except Exception as exc:
            failure = internal_error(exc, method=scope["method"], path=scope["path"])
            status, body = failure.status, orjson.dumps(failure.to_dict())
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


RAW_ENDPOINTS: dict[str, RawEndpoint] = {
    "/api/track": RawEndpoint(track_item),
    "/api/events": RawEndpoint(record_batch),
}
"""``POST`` to these paths is dispatched by ``app.SplitlabApp`` ahead of the middleware stack."""

# The raw routes also serve any app that includes this router without that dispatch; the
# FastAPI routes below, with the same paths and handlers, are matched after them and so only
# document the endpoints in /docs.
for _path, _endpoint in RAW_ENDPOINTS.items():
    router.routes.append(Route(_path, _endpoint, methods=["POST"]))

TRACK_RESPONSE = {
    200: {
        "description": "Stored (or a duplicate of a stored item), after the commit",
        "content": {
            "application/json": {
                "example": {
                    "success": True,
                    "eventId": "order-9001",
                    "duplicate": False,
                    "occurredAt": "2024-05-01T12:00:00Z",
                }
            }
        },
    }
}


@router.post(
    "/api/track",
    summary="Record one exposure or event (the common tracking payload)",
    openapi_extra=_body_doc(ITEM_SCHEMA),
    responses=TRACK_RESPONSE,  # type: ignore[arg-type]
)
async def track(request: Request) -> Response:
    """Body: ``{experimentKey|experimentId, variantKey|variantId, userKey, eventType, props,
    value?, eventId?, occurredAt?}``; ``eventType: "exposure"`` records an exposure.
    Answers after the write committed: ``{success, eventId, duplicate, occurredAt}``
    (``conflict: true`` for an exposure of a unit already exposed to another variant).
    Errors: 422 naming the field, 409 for an experiment that is not running.
    """
    return Response(orjson.dumps(await track_item(request)), media_type="application/json")


@router.post(
    "/api/events",
    summary="Record a batch of exposures and events (idempotent)",
    openapi_extra=_body_doc(
        {
            "type": "object",
            "required": ["events"],
            "properties": {"events": {"type": "array", "items": ITEM_SCHEMA}},
        }
    ),
)
async def events(request: Request) -> Response:
    """Body: ``{"events": [items as for /api/track]}`` (at most
    ``SPLITLAB_INGEST_MAX_BATCH_ITEMS``). Valid items are stored even when others are rejected;
    retrying the same batch reports every item as a duplicate. Answers
    ``{accepted, duplicates, rejected, results: [{index, status, eventId, error?, conflict?}]}``.
    """
    return Response(orjson.dumps(await record_batch(request)), media_type="application/json")
