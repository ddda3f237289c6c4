"""The optional LLM readout: the deterministic readout rewritten by a model, never trusted
to be there.

``llm_readout(settings=…, snapshot=…, recommendation=…, readout=…)`` asks the configured
provider (``SPLITLAB_LLM_PROVIDER``: ``anthropic`` or ``openai``, through their official
SDKs) to rewrite the deterministic readout for people, from that readout and the numbers
behind it.  Any failure — no provider, key or model configured, the SDK not installed, a
timeout, an HTTP or API error, an empty answer — gives the deterministic readout instead;
the result says which one it is and why.  Answers are cached in memory per snapshot id,
policy hash, provider and model, so a report asked for twice costs one call.

Tests pass ``http_client`` (an ``httpx2.Client`` with a ``MockTransport``, the client type
both SDKs take): nothing here needs the network to be tested.
"""

from __future__ import annotations

import importlib
import json
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, SecretStr

from splitlab.analysis.snapshot import Severity, Snapshot
from splitlab.decisions.readout import Readout, Section, metric_infos
from splitlab.decisions.recommendation import Recommendation


class LLMSettings(Protocol):
    """The settings the LLM readout reads (``splitlab.config.Settings`` has them)."""

    @property
    def llm_provider(self) -> str: ...
    @property
    def llm_api_key(self) -> SecretStr | None: ...
    @property
    def llm_model(self) -> str | None: ...
    @property
    def llm_base_url(self) -> str | None: ...
    @property
    def llm_timeout_seconds(self) -> float: ...


MAX_TOKENS = 1500
"""Longest answer asked for."""
MAX_ANSWER_CHARS = 20_000
"""A longer answer is cut (a model that rambles does not make a report unreadable)."""

SYSTEM_PROMPT = """\
You are a careful experimentation analyst writing the readout of one A/B test for product \
managers and engineers. Rewrite the deterministic readout you are given in clear, plain \
prose of at most 350 words. Rules: use only the numbers given, never invent or recompute \
one; keep the recommendation code and its reasons exactly as given; say which metrics are \
better when lower; keep every caveat (peeking, multiple testing, novelty, segments found \
after the fact, power) that the readout lists; do not add advice beyond the recommendation. \
Answer in Markdown paragraphs without headings."""


class LLMReadout(BaseModel):
    """A readout's prose and where it came from."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    source: Literal["llm", "deterministic"]
    """``llm`` when the model answered, else ``deterministic`` (the fallback)."""
    text: str
    """Markdown prose: the model's answer, or the deterministic readout's Markdown."""
    provider: str | None = None
    """The provider asked, if one was."""
    model: str | None = None
    """The model asked, if one was."""
    fallback_reason: str | None = None
    """Why the deterministic readout was used (``deterministic`` only)."""
    cached: bool = False
    """Whether the model's answer came from the cache."""

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return self.model_dump(mode="json")

    def section(self) -> Section | None:
        """The model's answer as a readout section, or None for the fallback."""
        if self.source != "llm":
            return None
        paragraphs = tuple(p.strip() for p in self.text.split("\n\n") if p.strip())
        return Section(
            key="summary",
            title=f"Summary written by {self.provider} ({self.model}); check it against the "
            "readout below",
            paragraphs=paragraphs,
        )


class ReadoutCache:
    """Answers by (snapshot id, policy hash, provider, model); the oldest go first."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._items: OrderedDict[tuple[Any, ...], str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> str | None:
        with self._lock:
            text = self._items.get(key)
            if text is not None:
                self._items.move_to_end(key)
            return text

    def put(self, key: tuple[Any, ...], text: str) -> None:
        with self._lock:
            self._items[key] = text
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


CACHE = ReadoutCache()
"""The process's cache of model answers."""


def numbers(snapshot: Snapshot, recommendation: Recommendation) -> dict[str, Any]:
    """The figures the model may quote: overall results, health findings, the
    recommendation with its reasons and evidence."""
    infos = metric_infos(snapshot)
    results = [
        {
            "metric": row.metric,
            "name": infos[row.metric].name,
            "role": infos[row.metric].role.value,
            "lower_is_better": infos[row.metric].direction.value == "decrease",
            "variant": row.variant,
            "control_mean": row.control_mean,
            "treatment_mean": row.treatment_mean,
            "relative_effect": row.rel_effect,
            "relative_ci": [row.rel_ci_low, row.rel_ci_high],
            "p_value": row.p_value,
            "p_value_adjusted": row.p_value_adjusted,
            "chance_to_win": row.chance_to_win,
            "reason": row.reason or None,
        }
        for row in snapshot.overall()
    ]
    return {
        "experiment": snapshot.experiment,
        "engine": snapshot.engine.value,
        "alpha": snapshot.settings.get("alpha"),
        "correction": snapshot.settings.get("correction"),
        "units": {u.variant: u.n for u in snapshot.units},
        "days": len(snapshot.days),
        "results": results,
        "health_findings": [
            {"check": c.check.value, "severity": c.severity.value, "message": c.message}
            for c in snapshot.health
            if c.severity is not Severity.INFO
        ],
        "recommendation": {
            "code": recommendation.code.value,
            "label": recommendation.label,
            "summary": recommendation.summary,
            "variant": recommendation.variant,
            "segments": recommendation.segments,
            "reasons": [r.model_dump(mode="json") for r in recommendation.reasons],
            "evidence": recommendation.evidence,
        },
    }


def build_prompt(snapshot: Snapshot, recommendation: Recommendation, readout: Readout) -> str:
    """The user message: the deterministic readout, then the numbers as JSON."""
    figures = json.dumps(numbers(snapshot, recommendation), indent=1, default=str)
    return (
        "Deterministic readout:\n\n"
        f"{readout.to_markdown(level=1)}\n"
        "Numbers (JSON; relative effects and CIs are fractions, 0.05 = 5%):\n\n"
        f"{figures}\n"
    )


def _ask_anthropic(
    anthropic: Any,
    *,
    key: str,
    model: str,
    base_url: str | None,
    timeout: float,
    prompt: str,
    http_client: Any,
) -> str:
    client = anthropic.Anthropic(
        api_key=key, base_url=base_url, timeout=timeout, max_retries=0, http_client=http_client
    )
    message = client.messages.create(
        model=model,
        max_tokens=MAX_TOKENS,
        system=SYSTEM_PROMPT,
        messages=[{"role": "user", "content": prompt}],
    )
    return "".join(getattr(block, "text", "") for block in message.content if block.type == "text")


def _ask_openai(
    openai: Any,
    *,
    key: str,
    model: str,
    base_url: str | None,
    timeout: float,
    prompt: str,
    http_client: Any,
) -> str:
    client = openai.OpenAI(
        api_key=key, base_url=base_url, timeout=timeout, max_retries=0, http_client=http_client
    )
    completion = client.chat.completions.create(
        model=model,
        max_completion_tokens=MAX_TOKENS,
        messages=[
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": prompt},
        ],
    )
    if not completion.choices:
        return ""
    return completion.choices[0].message.content or ""


ASK = {"anthropic": _ask_anthropic, "openai": _ask_openai}
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="splitlab-llm")


def _fallback(readout: Readout, reason: str, provider: str | None, model: str | None) -> LLMReadout:
    return LLMReadout(
        source="deterministic",
        text=readout.to_markdown(level=1),
        provider=provider,
        model=model,
        fallback_reason=reason,
    )


def _describe(error: BaseException) -> str:
    status = getattr(error, "status_code", None)
    text = " ".join(str(error).split())[:300] or type(error).__name__
    return f"{type(error).__name__}" + (f" (HTTP {status})" if status else "") + f": {text}"


def llm_readout(
    *,
    settings: LLMSettings,
    snapshot: Snapshot,
    recommendation: Recommendation,
    readout: Readout,
    http_client: Any = None,
    cache: ReadoutCache | None = CACHE,
) -> LLMReadout:
    """The model's readout of ``snapshot`` under ``recommendation``, or — on any failure —
    the deterministic ``readout``, saying why.  Never raises for a provider's failure and
    never waits much longer than ``SPLITLAB_LLM_TIMEOUT_SECONDS`` (10% and 0.1 s more)."""
    provider = settings.llm_provider
    model = settings.llm_model
    if provider not in ASK:
        return _fallback(readout, "no LLM provider configured (SPLITLAB_LLM_PROVIDER)", None, None)
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else ""
    if not key:
        return _fallback(readout, "no API key configured (SPLITLAB_LLM_API_KEY)", provider, model)
    if not model:
        return _fallback(readout, "no model configured (SPLITLAB_LLM_MODEL)", provider, model)
    cache_key = (snapshot.snapshot_id, recommendation.policy_hash, provider, model)
    cacheable = cache is not None and snapshot.snapshot_id is not None
    if cacheable:
        hit = cache.get(cache_key)  # type: ignore[union-attr]
        if hit is not None:
            return LLMReadout(source="llm", text=hit, provider=provider, model=model, cached=True)
    timeout = settings.llm_timeout_seconds
    prompt = build_prompt(snapshot, recommendation, readout)
    try:
        # loaded before the clock starts: importing an SDK is not waiting for the provider
        sdk = importlib.import_module(provider)
    except ImportError as error:
        return _fallback(
            readout,
            f"the {provider} SDK is not installed (pip install 'splitlab[llm]'): {error}",
            provider,
            model,
        )
    try:
        future = _POOL.submit(
            ASK[provider],
            sdk,
            key=key,
            model=model,
            base_url=settings.llm_base_url,
            timeout=timeout,
            prompt=prompt,
            http_client=http_client,
        )
        # the SDK's own timeout bounds each HTTP read; this bounds the whole call
        answer = future.result(timeout=timeout * 1.1 + 0.1)
    except FutureTimeout:
        future.cancel()
        return _fallback(readout, f"no answer within {timeout:g} s", provider, model)
    except Exception as error:  # any provider failure falls back: the report must not fail
        return _fallback(readout, _describe(error), provider, model)
    text = answer.strip()[:MAX_ANSWER_CHARS] if isinstance(answer, str) else ""
    if not text:
        return _fallback(readout, "the model gave an empty answer", provider, model)
    if cacheable:
        cache.put(cache_key, text)  # type: ignore[union-attr]
    return LLMReadout(source="llm", text=text, provider=provider, model=model)


def with_summary(readout: Readout, answer: LLMReadout) -> Readout:
    """``readout`` with the model's answer as its first section (unchanged on a fallback)."""
    section = answer.section()
    if section is None:
        return readout
    return readout.model_copy(update={"sections": (section, *readout.sections)})
