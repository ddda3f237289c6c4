"""Schemathesis against the app's own OpenAPI document, in process, on both backends.

Every operation gets generated requests that fit the document and requests that do not
(fixed seed, a bounded number of each), sent with an admin API key through the real app —
middleware, auth, routers, stores. The checks: no server error, every answer's status is
documented and its body fits the documented schema. Operations on an experiment or metric
key run twice: with generated keys and with the keys of a running experiment, so the
requests also reach past the 404.

``SPLITLAB_SCHEMATHESIS_EXAMPLES`` raises the number of examples for a longer local run.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import requests
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (  # type: ignore[attr-defined]
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup

from tests.api.helpers import create_running

SEED = 20_110_011
EXAMPLES = int(os.environ.get("SPLITLAB_SCHEMATHESIS_EXAMPLES", "8"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
KNOWN_KEYS = {"key": "checkout", "kind": "events"}
"""Path parameters of the running experiment made below (metrics: its primary metric)."""


def send(client: TestClient, case: Any, headers: dict[str, str]) -> Any:
    """Send a generated case through the in-process client (requests-style arguments of
    schemathesis, translated for httpx)."""
    kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
    if kwargs.get("files"):  # multipart: encoded by requests, as schemathesis would send it
        prepared = requests.Request(
            kwargs["method"],
            kwargs["url"],
            files=kwargs.pop("files"),
            data=kwargs.pop("data", None),
            headers=kwargs.get("headers"),
        ).prepare()
        kwargs["headers"] = dict(prepared.headers)
        kwargs["data"] = prepared.body
    data = kwargs.pop("data", None)
    if isinstance(data, str | bytes):
        kwargs["content"] = data
    elif data is not None:
        kwargs["data"] = data
    for unused in ("auth", "timeout", "verify", "allow_redirects", "cert", "proxies", "stream"):
        kwargs.pop(unused, None)
    if not kwargs.get("cookies"):
        kwargs.pop("cookies", None)
    return client.request(**kwargs)


def examine(
    client: TestClient, headers: dict[str, str], strategy: Any, mode: GenerationMode
) -> list[str]:
    """Send ``EXAMPLES`` cases drawn from ``strategy``; the failures, one line each."""
    failures: list[str] = []

    @seed(SEED)
    @settings(
        max_examples=EXAMPLES,
        phases=[Phase.explicit, Phase.generate],
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        response = send(client, case, headers)
        try:
            case.validate_response(response, checks=CHECKS)
        except (Exception, FailureGroup) as exc:  # collected: every operation is explored
            failures.append(
                f"{case.operation.label} ({mode.value}) -> {response.status_code}: "
                f"{str(exc)[:600]}\n    reproduce: {case.as_curl_command()[:600]}"
            )

    with contextlib.suppress(Unsatisfiable):  # nothing to generate (an operation without inputs)
        run()
    return failures


def explore(client: TestClient, headers: dict[str, str]) -> list[str]:
    """Every operation × mode × key choice; the failures found."""
    schema = schemathesis.openapi.from_dict(client.app.openapi())  # type: ignore[attr-defined]
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        parameters = {p.name for p in operation.path_parameters}
        choices: list[dict[str, Any] | None] = [None]
        if parameters:
            known = {name: KNOWN_KEYS[name] for name in parameters if name in KNOWN_KEYS}
            if "/api/metrics/" in operation.path:
                known["key"] = "conversion"
            choices.append(known or None)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            # with a known key only requests that fit: the rest is refused before the key matters
            for fixed in choices if mode is GenerationMode.POSITIVE else [None]:
                strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed)
                failures += examine(client, headers, strategy, mode)
    return failures


def test_the_api_keeps_its_openapi_contract(
    client: TestClient, admin: dict[str, str], reviewer: dict[str, str]
) -> None:
    create_running(client, admin, reviewer)
    failures = explore(client, admin)
    assert not failures, f"{len(failures)} failure(s):\n" + "\n".join(dict.fromkeys(failures))
