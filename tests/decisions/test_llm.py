"""The optional LLM readout through each official SDK with a fake transport (an
``httpx2.MockTransport``, the client type both SDKs take): what is sent, what comes back,
the cache, and the fallback to the deterministic readout on every kind of failure."""

from __future__ import annotations

import importlib
import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from pydantic import SecretStr

from splitlab.analysis.snapshot import Snapshot
from splitlab.config import Settings
from splitlab.decisions.llm import ReadoutCache, build_prompt, llm_readout, with_summary
from splitlab.decisions.readout import Readout, build_readout
from splitlab.decisions.recommendation import Recommendation
from splitlab.decisions.reports import render_report
from tests.decisions.report_helpers import advice
from tests.decisions.snapshots import metric, row, snapshot

ANSWER = "Conversion rose 11.8% for treatment; ship it, as the policy says."


def make_snapshot() -> Snapshot:
    rows = [
        row("conversion", rel=0.118, ci=(0.061, 0.175), p=0.0002),
        row("latency", rel=0.02, ci=(-0.01, 0.05), p=0.2, control_mean=120.0),
    ]
    metrics = [metric("conversion"), metric("latency", "guardrail", direction="decrease")]
    return snapshot(metrics=metrics, rows=rows, snapshot_id=7)


def settings(provider: str = "anthropic", **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "llm_provider": provider,
        "llm_api_key": SecretStr("sk-test"),
        "llm_model": "test-model",
        "llm_timeout_seconds": 5.0,
    }
    return Settings(**(values | overrides))


def anthropic_body(text: str) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "test-model",
        "content": [{"type": "text", "text": text}] if text else [],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5},
    }


def openai_body(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "test-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


class Fake:
    """A transport answering every request with ``respond(request)``, recording them."""

    def __init__(self, respond: Callable[[httpx2.Request], httpx2.Response]) -> None:
        self.requests: list[httpx2.Request] = []
        self.respond = respond

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        return self.respond(request)

    def client(self) -> httpx2.Client:
        return httpx2.Client(transport=httpx2.MockTransport(self.handler))


def ask(
    fake: Fake,
    config: Settings,
    *,
    snap: Snapshot | None = None,
    recommendation: Recommendation | None = None,
    cache: ReadoutCache | None = None,
) -> tuple[Any, Readout]:
    snap = snap or make_snapshot()
    recommendation = recommendation or advice(snapshot_id=snap.snapshot_id)
    readout = build_readout(snapshot=snap, recommendation=recommendation)
    answer = llm_readout(
        settings=config,
        snapshot=snap,
        recommendation=recommendation,
        readout=readout,
        http_client=fake.client(),
        cache=cache if cache is not None else ReadoutCache(),
    )
    return answer, readout


def test_anthropic_gets_the_readout_and_the_numbers() -> None:
    fake = Fake(lambda request: httpx2.Response(200, json=anthropic_body(ANSWER)))
    answer, readout = ask(fake, settings("anthropic"))
    assert answer.source == "llm"
    assert (answer.text, answer.provider, answer.model) == (ANSWER, "anthropic", "test-model")
    assert answer.fallback_reason is None and not answer.cached
    [request] = fake.requests
    assert request.url.path == "/v1/messages"
    # the key goes as x-api-key or a bearer token, by SDK version
    credentials = request.headers.get("x-api-key", "") + request.headers.get("authorization", "")
    assert "sk-test" in credentials
    body = json.loads(request.content)
    assert body["model"] == "test-model"
    assert "use only the numbers given" in body["system"]
    prompt = body["messages"][0]["content"]
    assert prompt == build_prompt(make_snapshot(), advice(snapshot_id=7), readout)
    assert "rose 11.8% (95% CI 6.1% to 17.5%)" in prompt  # the deterministic readout
    assert '"code": "SHIP_GLOBAL"' in prompt  # and the numbers
    assert '"lower_is_better": true' in prompt


def test_openai_chat_completion() -> None:
    fake = Fake(lambda request: httpx2.Response(200, json=openai_body(ANSWER)))
    answer, _ = ask(fake, settings("openai"))
    assert (answer.source, answer.text, answer.provider) == ("llm", ANSWER, "openai")
    [request] = fake.requests
    assert request.url.path.endswith("/chat/completions")
    assert request.headers["authorization"] == "Bearer sk-test"
    body = json.loads(request.content)
    assert [m["role"] for m in body["messages"]] == ["system", "user"]


def test_answers_are_cached_per_snapshot_and_policy() -> None:
    fake = Fake(lambda request: httpx2.Response(200, json=anthropic_body(ANSWER)))
    cache = ReadoutCache()
    first, _ = ask(fake, settings(), cache=cache)
    second, _ = ask(fake, settings(), cache=cache)
    assert (first.cached, second.cached) == (False, True)
    assert second.text == ANSWER and len(fake.requests) == 1
    ask(fake, settings(), cache=cache, recommendation=advice(snapshot_id=7, policy_hash="b" * 32))
    assert len(fake.requests) == 2  # another policy is another readout
    unsaved = make_snapshot().model_copy(update={"snapshot_id": None})
    ask(fake, settings(), cache=cache, snap=unsaved)
    ask(fake, settings(), cache=cache, snap=unsaved)
    assert len(fake.requests) == 4  # nothing to key an unsaved snapshot by: never cached


def fallback(answer: Any, readout: Readout, reason: str) -> None:
    assert answer.source == "deterministic"
    assert answer.text == readout.to_markdown(level=1)
    assert reason in answer.fallback_reason
    assert answer.section() is None


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_http_errors_fall_back(provider: str) -> None:
    fake = Fake(lambda request: httpx2.Response(500, json={"error": {"message": "overloaded"}}))
    answer, readout = ask(fake, settings(provider))
    fallback(answer, readout, "(HTTP 500)")
    assert len(fake.requests) == 1  # no retries: the fallback is immediate


def test_empty_answers_fall_back_and_are_not_cached() -> None:
    fake = Fake(lambda request: httpx2.Response(200, json=anthropic_body("  ")))
    cache = ReadoutCache()
    answer, readout = ask(fake, settings(), cache=cache)
    fallback(answer, readout, "empty answer")
    ask(fake, settings(), cache=cache)
    assert len(fake.requests) == 2
    openai_empty = Fake(lambda request: httpx2.Response(200, json=openai_body("")))
    answer, readout = ask(openai_empty, settings("openai"))
    fallback(answer, readout, "empty answer")


def test_a_transport_timeout_falls_back() -> None:
    def timeout(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ReadTimeout("read timed out", request=request)

    answer, readout = ask(Fake(timeout), settings("openai"))
    fallback(answer, readout, "APITimeoutError")


def test_a_hanging_provider_is_abandoned_at_the_timeout() -> None:
    release = threading.Event()

    def hang(request: httpx2.Request) -> httpx2.Response:
        release.wait(10)
        return httpx2.Response(200, json=anthropic_body(ANSWER))

    importlib.import_module("anthropic")  # loaded outside the timeout, as llm_readout does
    started = time.perf_counter()
    answer, readout = ask(Fake(hang), settings(llm_timeout_seconds=0.3))
    elapsed = time.perf_counter() - started
    release.set()
    fallback(answer, readout, "no answer within 0.3 s")
    assert elapsed < 2.0


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"llm_provider": "none"}, "no LLM provider configured"),
        ({"llm_api_key": None}, "no API key configured (SPLITLAB_LLM_API_KEY)"),
        ({"llm_api_key": SecretStr("")}, "no API key configured"),
        ({"llm_model": None}, "no model configured (SPLITLAB_LLM_MODEL)"),
    ],
)
def test_missing_configuration_falls_back_without_a_request(
    overrides: dict[str, Any], reason: str
) -> None:
    fake = Fake(lambda request: httpx2.Response(200, json=anthropic_body(ANSWER)))
    answer, readout = ask(fake, settings(**overrides))
    fallback(answer, readout, reason)
    assert fake.requests == []


def test_a_missing_sdk_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "anthropic", None)  # import anthropic raises ImportError
    fake = Fake(lambda request: httpx2.Response(200, json=anthropic_body(ANSWER)))
    answer, readout = ask(fake, settings())
    fallback(answer, readout, "the anthropic SDK is not installed")


def test_the_report_shows_the_model_first_and_says_which_readout_it_is() -> None:
    snap, recommendation = make_snapshot(), advice(snapshot_id=7)
    fake = Fake(lambda request: httpx2.Response(200, json=anthropic_body(ANSWER)))
    answer, readout = ask(fake, settings(), snap=snap, recommendation=recommendation)
    combined = with_summary(readout, answer)
    assert combined.sections[0].key == "summary"
    assert combined.sections[0].paragraphs == (ANSWER,)
    assert "anthropic (test-model)" in combined.sections[0].title
    assert combined.sections[1:] == readout.sections
    document = json.loads(
        render_report(
            snapshot=snap, recommendation=recommendation, spec=None, format="json", llm=answer
        )
    )
    assert document["readout_source"] == "llm"
    assert document["llm"]["provider"] == "anthropic"
    assert document["readout"]["sections"][0]["paragraphs"] == [ANSWER]
    markdown = render_report(
        snapshot=snap, recommendation=recommendation, spec=None, format="md", llm=answer
    ).decode()
    assert "## Summary written by anthropic" in markdown
    failed = Fake(lambda request: httpx2.Response(503))
    down, _ = ask(failed, settings(), snap=snap, recommendation=recommendation)
    document = json.loads(
        render_report(
            snapshot=snap, recommendation=recommendation, spec=None, format="json", llm=down
        )
    )
    assert document["readout_source"] == "deterministic"
    assert "(HTTP 503)" in document["llm"]["fallback_reason"]
    assert document["readout"] == readout.to_json()
