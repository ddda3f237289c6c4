"""Assignment over HTTP: ``POST /api/assign``, ``GET /api/sdk/config`` and bandit rebalancing.

``/api/assign`` is a hot path, written like ingestion: the body is parsed with orjson, the
API key check is cached, configs come from the in-process ``Allocations`` cache, and the
exposure goes through the warehouse's group-commit writer (the same facts ``/api/track``
writes). Choices, for clients:

* **Scopes.** ``/api/assign`` records exposures, so it needs scope ingest or admin (as
  ``/api/track``). ``/api/sdk/config`` only reads configs; SDKs usually hold ingest keys
  (they also send events), so it accepts read, ingest and admin keys.
* **Not running.** An experiment that exists but is not running answers 200 with
  ``variant: null, inExperiment: false, reason: "inactive"``, so a client keeps rendering
  its default when an experiment stops; only an unknown key is a 404.
* **Exposures** are recorded (with ``attributes`` as the exposure's attributes) only when
  the unit is in the experiment by hashing or by sticky bucketing, and ``record`` is not
  false. The answer does not wait for the commit (see ``ExposureBuffer``): the exposure is
  committed within milliseconds, and drained on a clean shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, NamedTuple

import orjson
from fastapi import APIRouter, Body, Request, Response
from starlette.concurrency import run_in_threadpool

from splitlab.analysis.bandit import binary_posteriors, rebalance_bandit
from splitlab.api.caches import Allocations, allocations_of, cached_principal
from splitlab.api.deps import Editor, ServicesDep
from splitlab.api.schemas import RebalanceIn
from splitlab.domain import Principal
from splitlab.domain.limits import json_value_problem
from splitlab.errors import NotFoundError, PermissionDeniedError, SplitlabError, ValidationError
from splitlab.services import Services
from splitlab.warehouse import Fact, ItemStatus, exposure_fact
from splitlab.warehouse.rules import CONTROL
from splitlab.warehouse.sticky import ReadOnlySticky
from splitlab.warehouse.validation import MAX_PROPS_BYTES, MAX_TEXT


@asynccontextmanager
async def _drain_on_shutdown(app: Any) -> AsyncIterator[None]:
    """Nested inside the app's lifespan: runs before the app closes the warehouse."""
    yield
    services: Services = app.state.services
    buffer = services.exposure_buffer
    if buffer is not None:
        await buffer.drain()


router = APIRouter(tags=["assignment"], lifespan=_drain_on_shutdown)
log = logging.getLogger(__name__)

RECORDED_REASONS = frozenset({"assigned", "sticky"})
"""Assignments that are real exposures (forced QA variants are not randomised)."""


class AssignRequest(NamedTuple):
    experiment: str
    unit_id: str
    attributes: dict[str, Any] | None
    record: bool


def _bad(field: str, message: str) -> ValidationError:
    return ValidationError(f"{field}: {message}", details=[{"loc": [field], "msg": message}])


def parse_assign(body: bytes) -> AssignRequest:
    """Validate the ``/api/assign`` body, naming the offending field (422)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise SplitlabError(
            f"malformed JSON body: {exc}", details=[{"loc": [], "msg": str(exc)}]
        ) from exc
    if not isinstance(data, dict):
        raise _bad("(body)", f"must be a JSON object, got {type(data).__name__}")
    experiment = data.get("experiment")
    if not isinstance(experiment, str) or not experiment:
        raise _bad("experiment", "is required (the experiment key, a string)")
    unit = data.get("unitId")
    if isinstance(unit, int) and not isinstance(unit, bool):
        unit = str(unit)
    if not isinstance(unit, str) or not unit:
        raise _bad("unitId", "is required (a non-empty string)")
    if len(unit) > MAX_TEXT:
        raise _bad("unitId", f"is longer than {MAX_TEXT} characters")
    if not unit.isprintable() and CONTROL.search(unit):  # the ingestion rule for userKey
        raise _bad("unitId", "must not contain NUL or other control characters")
    attributes = data.get("attributes")
    if attributes is not None:
        if not isinstance(attributes, dict):
            raise _bad("attributes", f"must be a JSON object, got {type(attributes).__name__}")
        problem = json_value_problem(attributes)
        if problem:
            raise _bad("attributes", problem)
        size = len(orjson.dumps(attributes))
        if size > MAX_PROPS_BYTES:
            raise _bad("attributes", f"is {size} bytes; the limit is {MAX_PROPS_BYTES} bytes")
    record = data.get("record", True)
    if not isinstance(record, bool):
        raise _bad("record", "must be true or false")
    return AssignRequest(experiment, unit, attributes, record)


async def _authorize(
    request: Request, services: Services, allowed: Callable[[Principal], bool], needs: str
) -> Principal:
    """The caller (API key checks cached for ``ingest_cache_seconds``), who must pass
    ``allowed``; ``needs`` names the required scopes in the 403 message."""
    principal = await cached_principal(request, services)
    if not allowed(principal):
        raise PermissionDeniedError(
            f"this needs an API key with scope {needs}", details={"scope": principal.scope}
        )
    return principal


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


_INACTIVE = orjson.dumps(
    {"variant": None, "payload": None, "inExperiment": False, "reason": "inactive"}
)


ASSIGN_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["experiment", "unitId"],
    "properties": {
        "experiment": {"type": "string", "description": "the experiment key"},
        "unitId": {
            "oneOf": [{"type": "string", "maxLength": MAX_TEXT}, {"type": "integer"}],
            "description": "the unit (user) id; no control characters",
        },
        "attributes": {
            "type": "object",
            "description": "targeting attributes, recorded with the exposure "
            f"(≤ {MAX_PROPS_BYTES} bytes as JSON, ≤ 32 levels)",
        },
        "record": {"type": "boolean", "default": True, "description": "record the exposure"},
    },
}
"""JSON schema of the ``/api/assign`` body (documentation: validation is ``parse_assign``)."""


@router.post(
    "/api/assign",
    summary="Assign a unit to a variant and record its exposure",
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": ASSIGN_BODY}}}
    },
)
async def assign(request: Request) -> Response:
    """Body: ``{"experiment", "unitId", "attributes"?, "record"?: true}``.
    Answers ``{"variant", "payload", "inExperiment", "reason"}`` (see ``REASONS``).
    """
    services: Services = request.app.state.services
    arrived = time.monotonic()
    await _authorize(request, services, Principal.can_ingest, "ingest or admin")
    body = parse_assign(await request.body())
    allocations = allocations_of(services)
    snapshot = await allocations.current()
    live = snapshot.live.get(body.experiment)
    if live is None:  # not running in the cached configs: make sure before saying so
        snapshot = await allocations.current(fresh_after=arrived)
        live = snapshot.live.get(body.experiment)
    if live is None:
        if body.experiment in snapshot.statuses:
            return Response(_INACTIVE, media_type="application/json")
        raise NotFoundError(f"no experiment {body.experiment!r}", details={"key": body.experiment})
    sticky = None
    if live.sticky:
        store = allocations.sticky
        if not store.is_fresh(body.experiment):
            if not store.loaded(body.experiment):  # first load: our exposures first
                await _buffer(services, allocations).drain()
            await run_in_threadpool(store.refresh, body.experiment)
        sticky = ReadOnlySticky(store)
    result = live.compiled.assign(body.unit_id, body.attributes, sticky=sticky)
    if body.record and result.reason in RECORDED_REASONS:
        backlog = _record(services, allocations, body, result.variant, sticky=live.sticky)
        if backlog is not None:
            await backlog
    return _json(
        {
            "variant": result.variant,
            "payload": result.payload,
            "inExperiment": result.in_experiment,
            "reason": result.reason,
        }
    )


class ExposureBuffer:
    """Exposures from ``/api/assign``, handed to the warehouse's group-commit writer as one
    job every ``max_delay`` seconds (or ``max_items``), not one job per request.

    The answer does not wait for the commit — the client waits for its variant, not for the
    bookkeeping: an exposure is committed within one tick plus one commit; the router's
    lifespan drains the buffer before the app closes the warehouse (no loss on a clean
    shutdown); a failed write is logged and the unit is written again on its next
    assignment. Past ``max_pending`` uncommitted exposures a request waits for its own
    commit (backpressure instead of unbounded memory).
    """

    def __init__(
        self,
        services: Services,
        allocations: Allocations,
        *,
        max_delay: float = 0.005,
        max_items: int = 1000,
        max_pending: int = 20_000,
    ) -> None:
        self.services = services
        self.allocations = allocations
        self.max_delay = max_delay
        self.max_items = max_items
        self.max_pending = max_pending
        self._facts: list[Fact] = []
        self._timer: asyncio.TimerHandle | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._in_flight: set[asyncio.Future[Any]] = set()
        self.pending = 0

    def add(self, fact: Fact) -> asyncio.Future[None] | None:
        """Buffer ``fact``; returns a future to await when the backlog is too long."""
        self._facts.append(fact)
        self.pending += 1
        if len(self._facts) >= self.max_items:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.max_delay, self.flush)
        if self.pending <= self.max_pending:
            return None
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return waiter

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        facts, self._facts = self._facts, []
        waiters, self._waiters = self._waiters, []
        if not facts:
            return
        writer = self.services.warehouse.writer
        if writer is None:  # a read-only warehouse cannot record
            log.error("warehouse is read-only: %d exposure(s) not recorded", len(facts))
            self.pending -= len(facts)
            return
        written = asyncio.wrap_future(writer.submit_future(facts))
        self._in_flight.add(written)

        def done(future: asyncio.Future[Any]) -> None:
            self._in_flight.discard(future)
            self.pending -= len(facts)
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
            if future.cancelled() or future.exception() is not None:
                log.error("%d exposure(s) not recorded: %s", len(facts), future.exception())
                return
            recorded = self.allocations.recorded
            for fact, outcome in zip(facts, future.result(), strict=True):
                if outcome.conflict:  # the warehouse holds another first variant
                    log.warning(
                        "exposure conflict: %s/%s assigned %s, first exposed to another variant",
                        fact.experiment_key,
                        fact.unit_id,
                        fact.variant_key,
                    )
                elif outcome.status in (ItemStatus.ACCEPTED, ItemStatus.DUPLICATE):
                    recorded.add((fact.experiment_key or "", fact.unit_id))

        written.add_done_callback(done)

    async def drain(self) -> None:
        """Write what is buffered and wait for every write in flight."""
        self.flush()
        if self._in_flight:
            await asyncio.wait(set(self._in_flight))


def _buffer(services: Services, allocations: Allocations) -> ExposureBuffer:
    buffer = services.exposure_buffer
    if buffer is None:
        buffer = services.exposure_buffer = ExposureBuffer(services, allocations)
    return buffer


def _record(
    services: Services,
    allocations: Allocations,
    body: AssignRequest,
    variant: str | None,
    *,
    sticky: bool,
) -> asyncio.Future[None] | None:
    """Queue the unit's exposure (see ``ExposureBuffer``) unless this process already saw
    it committed; a sticky experiment remembers the variant at once."""
    assert variant is not None
    if (body.experiment, body.unit_id) in allocations.recorded:
        return None
    if sticky:
        allocations.sticky.set(body.experiment, "", body.unit_id, variant)
    fact = exposure_fact(
        experiment_key=body.experiment,
        variant_key=variant,
        unit_id=body.unit_id,
        attributes=body.attributes,
        source="assign",
    )
    return _buffer(services, allocations).add(fact)


def _can_fetch_config(principal: Principal) -> bool:
    return principal.can_read() or principal.can_ingest()


@router.get("/api/sdk/config", summary="Running experiments' configs for local evaluation")
async def sdk_config(request: Request) -> Response:
    """``{"experiments": [config...], "version"}`` with a strong ETag; ``If-None-Match``
    with the current ETag answers 304. Scope read, ingest or admin."""
    services: Services = request.app.state.services
    await _authorize(request, services, _can_fetch_config, "read, ingest or admin")
    snapshot = await allocations_of(services).current()
    headers = {"ETag": snapshot.etag, "Cache-Control": "no-cache"}
    match = request.headers.get("if-none-match")
    if match is not None and snapshot.etag in {tag.strip() for tag in match.split(",")}:
        return Response(status_code=304, headers=headers)
    return Response(snapshot.sdk_body, media_type="application/json", headers=headers)


@router.post("/api/experiments/{key}/rebalance", summary="Re-weight a bandit (Thompson)")
def rebalance(
    key: str,
    services: ServicesDep,
    actor: Editor,
    request_body: Annotated[RebalanceIn | None, Body()] = None,
) -> dict[str, Any]:
    """Set a running bandit's weights ∝ P(arm is best), at least 1% per arm.

    Body (optional): ``{"posteriorMeans": [...], "posteriorVariances": [...] (variant order),
    "seed"?, "reason"?}``. Without posteriors they are computed from the warehouse when the
    primary metric is a plain binary one (Beta posteriors of converted exposed units);
    otherwise 422 asks for them. The change is audited with actor ``bandit``.
    """
    body = request_body or RebalanceIn()
    means, variances = body.posterior_means, body.posterior_variances
    source: dict[str, Any] = {"posteriors": "request"}
    if means is None and variances is None:
        posteriors = binary_posteriors(services=services, key=key)
        means, variances = posteriors.means, posteriors.variances
        source = {
            "posteriors": "warehouse",
            "units": dict(zip(posteriors.variants, posteriors.units, strict=True)),
            "conversions": dict(zip(posteriors.variants, posteriors.conversions, strict=True)),
        }
    elif means is None or variances is None:
        missing = "posteriorMeans" if means is None else "posteriorVariances"
        raise _bad(missing, "send posteriorMeans and posteriorVariances together")
    reason = body.reason or f"Thompson sampling rebalance requested by {actor.username}"
    change = rebalance_bandit(
        services=services,
        key=key,
        posterior_means=means,
        posterior_variances=variances,
        seed=body.seed,
        reason=reason,
    )
    return change.to_dict() | source


__all__ = ["RECORDED_REASONS", "parse_assign", "router"]
