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
* **Exposures** are recorded (with ``attributes`` as the exposure's attributes, after the
  write committed) only when the unit is in the experiment by hashing or by sticky
  bucketing, and ``record`` is not false.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any, NamedTuple

import orjson
from fastapi import APIRouter, Body, Request, Response
from starlette.concurrency import run_in_threadpool

from splitlab.allocation import (
    Allocations,
    ReadOnlySticky,
    allocations_of,
    binary_posteriors,
    rebalance_bandit,
)
from splitlab.api.deps import Editor, ServicesDep, get_principal
from splitlab.api.ingest import KeyCache
from splitlab.domain import LOCAL_ADMIN, Principal
from splitlab.errors import NotFoundError, PermissionDeniedError, SplitlabError, ValidationError
from splitlab.services import Services
from splitlab.warehouse import ItemStatus, exposure_fact
from splitlab.warehouse.validation import MAX_PROPS_BYTES, MAX_TEXT

router = APIRouter(tags=["assignment"])
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
    attributes = data.get("attributes")
    if attributes is not None:
        if not isinstance(attributes, dict):
            raise _bad("attributes", f"must be a JSON object, got {type(attributes).__name__}")
        size = len(orjson.dumps(attributes))
        if size > MAX_PROPS_BYTES:
            raise _bad("attributes", f"is {size} bytes; the limit is {MAX_PROPS_BYTES} bytes")
    record = data.get("record", True)
    if not isinstance(record, bool):
        raise _bad("record", "must be true or false")
    return AssignRequest(experiment, unit, attributes, record)


def _keys(services: Services) -> KeyCache:
    cache = services.extras.get("assign_keys")
    if cache is None:
        cache = services.extras["assign_keys"] = KeyCache(services.settings.ingest_cache_seconds)
    return cache  # type: ignore[no-any-return]


async def _authorize(
    request: Request, services: Services, allowed: Callable[[Principal], bool], needs: str
) -> Principal:
    """The caller (API key checks cached for ``ingest_cache_seconds``), who must pass
    ``allowed``; ``needs`` names the required scopes in the 403 message."""
    if not services.settings.auth_enabled:
        return LOCAL_ADMIN
    keys = _keys(services)
    header = request.headers.get("authorization", "")
    api_key = header[7:].strip() if header.lower().startswith("bearer ") else None
    api_key = api_key or request.headers.get("x-api-key")
    principal = keys.get(api_key) if api_key else None
    if principal is None:
        principal = await run_in_threadpool(get_principal, request, services)
        if api_key:
            keys.put(api_key, principal)
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


@router.post("/api/assign", summary="Assign a unit to a variant and record its exposure")
async def assign(request: Request) -> Response:
    """Body: ``{"experiment", "unitId", "attributes"?, "record"?: true}``.
    Answers ``{"variant", "payload", "inExperiment", "reason"}`` (see ``REASONS``).
    """
    services: Services = request.app.state.services
    await _authorize(request, services, Principal.can_ingest, "ingest or admin")
    body = parse_assign(await request.body())
    allocations = allocations_of(services)
    snapshot = await allocations.current()
    live = snapshot.live.get(body.experiment)
    if live is None:
        if body.experiment in snapshot.statuses:
            return Response(_INACTIVE, media_type="application/json")
        raise NotFoundError(f"no experiment {body.experiment!r}", details={"key": body.experiment})
    sticky = None
    if live.sticky:
        store = allocations.sticky
        if not store.is_fresh(body.experiment):
            await run_in_threadpool(store.refresh, body.experiment)
        sticky = ReadOnlySticky(store)
    result = live.compiled.assign(body.unit_id, body.attributes, sticky=sticky)
    if body.record and result.reason in RECORDED_REASONS:
        await _record(services, allocations, body, result.variant, sticky=live.sticky)
    return _json(
        {
            "variant": result.variant,
            "payload": result.payload,
            "inExperiment": result.in_experiment,
            "reason": result.reason,
        }
    )


async def _record(
    services: Services,
    allocations: Allocations,
    body: AssignRequest,
    variant: str | None,
    *,
    sticky: bool,
) -> None:
    assert variant is not None
    pair = (body.experiment, body.unit_id)
    if pair in allocations.recorded:
        return
    fact = exposure_fact(
        experiment_key=body.experiment,
        variant_key=variant,
        unit_id=body.unit_id,
        attributes=body.attributes,
        source="assign",
    )
    (outcome,) = await services.warehouse.submit([fact])
    if outcome.conflict:
        # the warehouse holds another first variant: our sticky view was stale
        log.warning(
            "exposure conflict: %s/%s assigned %s but first exposed to another variant",
            body.experiment,
            body.unit_id,
            variant,
        )
    elif outcome.status in (ItemStatus.ACCEPTED, ItemStatus.DUPLICATE):
        allocations.recorded.add(pair)
        if sticky:
            allocations.sticky.set(body.experiment, "", body.unit_id, variant)


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
    request_body: Annotated[dict[str, Any] | None, Body()] = None,
) -> dict[str, Any]:
    """Set a running bandit's weights ∝ P(arm is best), at least 1% per arm.

    Body (optional): ``{"posteriorMeans": [...], "posteriorVariances": [...] (variant order),
    "seed"?, "reason"?}``. Without posteriors they are computed from the warehouse when the
    primary metric is a plain binary one (Beta posteriors of converted exposed units);
    otherwise 422 asks for them. The change is audited with actor ``bandit``.
    """
    body = request_body or {}
    means, variances = body.get("posteriorMeans"), body.get("posteriorVariances")
    source: dict[str, Any] = {"posteriors": "request"}
    if means is None and variances is None:
        posteriors = binary_posteriors(services=services, key=key)
        means, variances = posteriors.means, posteriors.variances
        source = {
            "posteriors": "warehouse",
            "units": dict(zip(posteriors.variants, posteriors.units, strict=True)),
            "conversions": dict(zip(posteriors.variants, posteriors.conversions, strict=True)),
        }
    for name, values in (("posteriorMeans", means), ("posteriorVariances", variances)):
        if not isinstance(values, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in values
        ):
            raise _bad(name, "must be an array of numbers, one per variant")
    seed = body.get("seed", 0)
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise _bad("seed", "must be an integer")
    reason = str(body.get("reason") or f"Thompson sampling rebalance requested by {actor.username}")
    change = rebalance_bandit(
        services=services,
        key=key,
        posterior_means=means,  # type: ignore[arg-type]
        posterior_variances=variances,  # type: ignore[arg-type]
        seed=seed,
        reason=reason,
    )
    return change.to_dict() | source


__all__ = ["RECORDED_REASONS", "parse_assign", "router"]
