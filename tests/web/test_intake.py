"""The intake wizard (``/experiments/new``): validation errors next to their fields, the draft
saved (and audited) at every step and resumed, CSRF, roles, and the review request at the end."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from splitlab.domain import Role
from splitlab.services import Services
from splitlab.simulate import generate
from splitlab.simulate.run import simulate_into
from splitlab.web.intake_forms import SLUG_HELP
from tests.conftest import Keys
from tests.web.intake_helpers import csrf_of, field_error, log_in

WIZARD = "/experiments/new"


def post(client: TestClient, csrf: str, step: int, draft: str | None = None, **fields: Any) -> Any:
    data: dict[str, Any] = {"csrf_token": csrf, "step": str(step)} | fields
    if draft:
        data["draft"] = draft
    return client.post(WIZARD, data=data, follow_redirects=False)


def experiment(client: TestClient, key: str) -> dict[str, Any]:
    answer = client.get(f"/api/experiments/{key}")
    assert answer.status_code == 200
    return dict(answer.json())


def audit_actions(client: TestClient, key: str) -> list[tuple[str, str]]:
    entries = client.get(f"/api/experiments/{key}/audit").json()["entries"]
    return [(e["action"], e.get("reason") or "") for e in entries]


@pytest.fixture
def editor_csrf(client: TestClient, keys: Keys) -> str:
    return log_in(client, keys, "erin", Role.EDITOR)


ABOUT = {
    "key": "one-page-checkout",
    "name": "One-page checkout",
    "hypothesis": "Folding checkout into one page removes a step where buyers drop out.",
    "predicted_outcome": "conversion +3% relative",
    "type": "feature",
    "team": "growth",
}
VARIANTS = {
    "variants.0.key": "control",
    "variants.0.name": "Three pages",
    "variants.0.weight": "50",
    "variants.1.key": "one_page",
    "variants.1.name": "One page",
    "variants.1.weight": "50",
    "variants.1.payload": '{"layout": "single"}',
    "variants.2.key": "",
    "control": "0",
}


def test_each_step_saves_the_draft_and_a_reload_resumes(
    client: TestClient, editor_csrf: str
) -> None:
    csrf = editor_csrf
    first = client.get(WIZARD)
    assert first.status_code == 200 and 'aria-current="step"' in first.text
    created = post(client, csrf, 1, **ABOUT)
    assert created.status_code == 303
    key = ABOUT["key"]
    assert created.headers["location"] == f"{WIZARD}?draft={key}&step=2"
    draft = experiment(client, key)
    assert draft["status"] == "draft" and draft["created_by"] == "erin"
    assert draft["hypothesis"] == ABOUT["hypothesis"] and draft["team"] == "growth"
    # a reload (or a later visit) of the bare draft URL resumes at the first open step
    assert client.get(f"{WIZARD}?draft={key}", follow_redirects=False).headers["location"] == (
        f"{WIZARD}?draft={key}&step=2"
    )

    assert post(client, csrf, 2, key, **VARIANTS).status_code == 303
    draft = experiment(client, key)
    assert [(v["key"], v["weight"], v["is_control"]) for v in draft["variants"]] == [
        ("control", 0.5, True),
        ("one_page", 0.5, False),
    ]
    assert draft["variants"][1]["payload"] == {"layout": "single"}
    # the step shows what was saved
    assert 'value="one_page"' in client.get(f"{WIZARD}?draft={key}&step=2").text

    # step 3: define the primary metric inline, and a guardrail with its margin
    defined = post(
        client,
        csrf,
        3,
        key,
        **{"new.key": "checkout-conversion", "new.kind": "binary", "new.event": "purchase"},
        **{"new.role": "primary", "new.direction": "increase"},
    )
    assert defined.status_code == 303
    assert experiment(client, key)["metrics"]["primary"] == "checkout-conversion"
    client.post(
        "/api/metrics",
        json={"key": "latency", "kind": "sum", "event": "page_load", "direction": "decrease"},
        headers={"X-CSRF-Token": csrf},
    )
    picked = client.post(
        WIZARD,
        data={
            "csrf_token": csrf,
            "step": "3",
            "draft": key,
            "metrics.primary": "checkout-conversion",
            "metrics.guardrails": "latency",
            "margin.latency": "0.05",
        },
        follow_redirects=False,
    )
    assert picked.status_code == 303
    metrics = experiment(client, key)["metrics"]
    assert metrics["guardrails"] == [{"key": "latency", "margin": 0.05}]

    sized = post(
        client, csrf, 4, key, baseline="0.1", mde="5", alpha="0.05", power="0.8",
        daily_units="10000", sidedness="two-sided",
    )  # fmt: skip
    assert sized.status_code == 303
    plan = experiment(client, key)["plan"]
    assert (plan["mde"], plan["alpha"], plan["power"]) == (0.05, 0.05, 0.8)
    duration = client.get(sized.headers["location"])
    assert "57,756" in duration.text and 'value="14"' in duration.text  # 12 days → 2 weeks
    twin = client.get(sized.headers["location"] + "&format=json").json()
    assert twin["step"] == 5 and twin["sizing"]["n_per_variant"] == 57_756

    planned = post(
        client, csrf, 5, key, baseline="0.1", daily_units="10000", sidedness="two-sided",
        max_days="14", note="on",
    )  # fmt: skip
    assert planned.status_code == 303
    assert experiment(client, key)["plan"]["max_days"] == 14
    notes = client.get(f"/api/experiments/{key}/notes").json()["notes"]
    assert "57756 units per variant" in notes[0]["body"]

    review = client.get(f"{WIZARD}?draft={key}&step=6")
    assert "ready to ask for a review" in review.text
    assert (
        client.get(f"{WIZARD}?draft={key}", follow_redirects=False)
        .headers["location"]
        .endswith("step=6")
    )
    done = post(client, csrf, 6, key, request_review="on", reviewers="rita")
    assert done.status_code == 303 and done.headers["location"] == f"/experiments/{key}"
    assert experiment(client, key)["status"] == "review"
    assert client.get(f"/api/experiments/{key}/reviews").json()["requests"][0]["reviewers"] == [
        "rita"
    ]
    actions = audit_actions(client, key)
    assert [a for a, _ in actions if a in ("create", "update", "transition", "note")] == [
        "transition", "note", "update", "update", "update", "update", "update", "create",
    ]  # fmt: skip
    assert ("update", "intake wizard: variants") in actions
    # once in review the wizard no longer edits it
    assert client.get(f"{WIZARD}?draft={key}&step=2").status_code == 409


def test_errors_are_shown_next_to_their_fields(client: TestClient, editor_csrf: str) -> None:
    csrf = editor_csrf
    bad = post(client, csrf, 1, key="Not A Key", name="x" * 201, hypothesis="")
    assert bad.status_code == 422
    assert field_error(bad.text, "key") == SLUG_HELP
    assert field_error(bad.text, "hypothesis") == "state what you expect to happen and why"
    assert field_error(bad.text, "name") == "is 201 characters long; the limit is 200"
    assert 'value="Not A Key"' in bad.text  # what was typed stays
    assert 'class="error-summary"' in bad.text and 'href="#f-key"' in bad.text
    assert experiment_missing(client, "not-a-key")

    assert post(client, csrf, 1, **ABOUT).status_code == 303
    taken = post(client, csrf, 1, **ABOUT)
    assert taken.status_code == 422
    assert "exists" in (field_error(taken.text, "key") or "")

    key = ABOUT["key"]
    wrong = post(
        client,
        csrf,
        2,
        key,
        **{
            "variants.0.key": "control",
            "variants.0.weight": "50",
            "variants.1.key": "",
            "variants.2.key": "Treat ment",
            "variants.2.weight": "lots",
            "variants.2.payload": "{not json",
            "control": "",
        },
    )
    assert wrong.status_code == 422
    assert (
        field_error(wrong.text, "variants.2.weight") == "a share of traffic between 0 and 100 (%)"
    )
    for odd in ("５0", "5_0"):
        row = {"variants.0.key": "control", "variants.0.weight": odd}
        typed = post(client, csrf, 2, key, **row)
        weight_error = field_error(typed.text, "variants.0.weight")
        assert weight_error == "a share of traffic between 0 and 100 (%)", odd
    assert (field_error(wrong.text, "variants.2.payload") or "").startswith("not valid JSON")
    assert field_error(wrong.text, "control") == "mark one variant as the control"
    # domain (pydantic) errors of a variant land on the row the user typed it in
    dup = post(
        client,
        csrf,
        2,
        key,
        **{
            "variants.0.key": "control",
            "variants.0.weight": "50",
            "variants.1.key": "",
            "variants.2.key": "Treat ment",
            "variants.2.weight": "50",
            "control": "0",
        },
    )
    assert dup.status_code == 422
    assert field_error(dup.text, "variants.2.key") == SLUG_HELP
    assert experiment(client, key)["variants"] == []  # nothing half-saved

    assert post(client, csrf, 2, key, **VARIANTS).status_code == 303
    no_primary = post(client, csrf, 3, key)
    assert no_primary.status_code == 422
    assert "choose the primary metric" in (field_error(no_primary.text, "metrics.primary") or "")
    bad_metric = post(
        client, csrf, 3, key, **{"new.key": "Bad Key", "new.event": "", "new.role": "primary"}
    )
    assert bad_metric.status_code == 422
    assert field_error(bad_metric.text, "new.key") is not None
    assert (
        field_error(bad_metric.text, "new.event")
        == "an events metric needs event (the event it counts)"
    )
    ratio = post(
        client, csrf, 3, key, **{"new.key": "rps", "new.kind": "ratio", "new.event": "purchase"}
    )
    assert ratio.status_code == 422 and "a ratio metric needs denominator_event" in ratio.text
    client.post(
        "/api/metrics",
        json={"key": "conv", "kind": "binary", "event": "purchase"},
        headers={"X-CSRF-Token": csrf},
    )
    margin = post(
        client, csrf, 3, key, **{"metrics.primary": "conv", "metrics.guardrails": "conv2"}
    )
    assert margin.status_code == 422
    assert field_error(margin.text, "metrics.guardrails") == "unknown metric 'conv2'"
    client.post(
        "/api/metrics",
        json={"key": "lat", "kind": "sum", "event": "load", "direction": "decrease"},
        headers={"X-CSRF-Token": csrf},
    )
    odd = post(
        client,
        csrf,
        3,
        key,
        **{"metrics.primary": "conv", "metrics.guardrails": "lat", "margin.lat": "０.5"},
    )
    assert odd.status_code == 422
    assert field_error(odd.text, "margin.lat") == "a non-negative number, e.g. 0.02 for 2%"
    assert post(client, csrf, 3, key, **{"metrics.primary": "conv"}).status_code == 303

    sizing = post(client, csrf, 4, key, baseline="1.5", mde="5", alpha="0.05", power="0.8")
    assert sizing.status_code == 422
    assert (
        field_error(sizing.text, "baseline") == "a conversion rate lies between 0 and 1, e.g. 0.12"
    )
    too_far = post(client, csrf, 4, key, baseline="0.6", mde="80", alpha="0.7", power="0.8")
    assert field_error(too_far.text, "alpha") == "Input should be less than 0.5"
    not_number = post(client, csrf, 4, key, baseline="0.1", mde="five", alpha="0.05", power="2")
    assert field_error(not_number.text, "mde") == "a relative change in percent, e.g. 5"
    assert experiment(client, key)["plan"]["mde"] is None
    # only ASCII numbers: float() alone would read "５" as 5 and "5_0" as 50
    for odd in ("５", "5_0", "nan", "inf"):
        typed = post(client, csrf, 4, key, baseline="0.1", mde=odd, alpha="0.05", power="0.8")
        assert field_error(typed.text, "mde") == "a relative change in percent, e.g. 5", odd
    assert experiment(client, key)["plan"]["mde"] is None

    days = post(client, csrf, 5, key, baseline="0.1", max_days="0")
    assert days.status_code == 422
    assert field_error(days.text, "max_days") == "Input should be greater than or equal to 1"

    # finishing an incomplete draft: the lifecycle's reasons, and the draft stays a draft
    client.post(
        "/api/experiments",
        json={"key": "half-done", "hypothesis": "h"},
        headers={"X-CSRF-Token": csrf},
    )
    unfinished = post(client, csrf, 6, "half-done", request_review="on")
    assert unfinished.status_code == 422
    assert "at least 2 variants are needed" in unfinished.text
    assert experiment(client, "half-done")["status"] == "draft"


def experiment_missing(client: TestClient, key: str) -> bool:
    return client.get(f"/api/experiments/{key}").status_code == 404


def test_csrf_is_required(client: TestClient, editor_csrf: str) -> None:
    for token in (None, "forged-token"):
        data = {"step": "1"} | ABOUT
        if token:
            data["csrf_token"] = token
        refused = client.post(WIZARD, data=data, follow_redirects=False)
        assert refused.status_code == 403
    assert experiment_missing(client, ABOUT["key"])


def test_a_viewer_cannot_create(client: TestClient, keys: Keys) -> None:
    csrf = log_in(client, keys, "val", Role.VIEWER)
    page = client.get(WIZARD, headers={"accept": "text/html"})
    assert page.status_code == 403 and "editor role" in page.text
    refused = post(client, csrf, 1, **ABOUT)
    assert refused.status_code == 403
    assert experiment_missing(client, ABOUT["key"])


def test_anonymous_visitors_are_sent_to_log_in(client: TestClient) -> None:
    assert client.get(WIZARD, follow_redirects=False).headers["location"] == "/login"
    csrf = csrf_of(client.get("/login").text)
    refused = client.post(WIZARD, data={"csrf_token": csrf, "step": "1"} | ABOUT)
    assert refused.status_code == 401


def test_step_four_starts_from_recent_data(
    client: TestClient, services: Services, editor_csrf: str
) -> None:
    simulate_into(services, generate("aa_null", units=600, days=7, seed=5))
    csrf = editor_csrf
    assert post(client, csrf, 1, **ABOUT).status_code == 303
    key = ABOUT["key"]
    assert post(client, csrf, 2, key, **VARIANTS).status_code == 303
    assert post(client, csrf, 3, key, **{"metrics.primary": "aa-revenue"}).status_code == 303
    page = client.get(f"{WIZARD}?draft={key}&step=4")
    twin = client.get(f"{WIZARD}?draft={key}&step=4&format=json").json()
    baseline = twin["baseline"]
    assert twin["shape"] == "mean" and baseline["units"] >= 600
    assert f'value="{baseline["mean"]:.6g}"' in page.text
    assert f'value="{baseline["sd"]:.6g}"' in page.text
    assert "From the last 28 days of data" in page.text


def test_plain_form_buttons_and_going_back(client: TestClient, editor_csrf: str) -> None:
    """Without JavaScript: "add a variant" and "split evenly" are form buttons; going back to
    step 1 edits the draft (the key stays); the JSON twin lists the viewer's drafts."""
    csrf = editor_csrf
    assert post(client, csrf, 1, **ABOUT).status_code == 303
    key = ABOUT["key"]
    added = post(client, csrf, 2, key, action="add_variant", **VARIANTS)
    assert added.status_code == 200 and 'name="variants.3.key"' in added.text
    split = post(
        client,
        csrf,
        2,
        key,
        action="split_evenly",
        **(VARIANTS | {"variants.2.key": "two_step", "variants.3.key": ""}),
    )
    assert split.status_code == 200
    for index, share in ((0, "33.3333"), (1, "33.3333"), (2, "33.3334")):
        assert f'name="variants.{index}.weight" value="{share}"' in split.text
    assert experiment(client, key)["variants"] == []  # the buttons only redraw the form
    edited = post(client, csrf, 1, key, **(ABOUT | {"key": "ignored", "team": "payments"}))
    assert edited.status_code == 303
    draft = experiment(client, key)
    assert draft["team"] == "payments" and draft["key"] == key
    assert experiment_missing(client, "ignored")
    twin = client.get(WIZARD, params={"format": "json"}).json()
    assert twin["step"] == 1 and twin["experiment"] is None
    assert [d["key"] for d in twin["drafts"]] == [key]
    step2 = client.get(WIZARD, params={"draft": key, "step": 2, "format": "json"}).json()
    assert step2["experiment"]["key"] == key and len(step2["rows"]) == 2
    assert client.get(WIZARD, params={"draft": "nope"}).status_code == 404


FIELD_NAMES = [
    *ABOUT,
    "variants.0.key", "variants.0.weight", "variants.0.payload", "variants.1.key",
    "variants.1.weight", "control", "metrics.primary", "metrics.guardrails", "margin.x",
    "new.key", "new.kind", "new.event", "new.quantile", "new.role", "baseline", "sd", "mde",
    "alpha", "power", "daily_units", "sidedness", "max_days", "note", "request_review",
    "reviewers", "action",
]  # fmt: skip


def test_hostile_forms_never_fail_the_server(client: TestClient, editor_csrf: str) -> None:
    """Whatever a form carries, every step answers with a page or a redirect, never a 500."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    csrf = editor_csrf
    assert post(client, csrf, 1, **ABOUT).status_code == 303
    text = st.one_of(
        st.text(max_size=30),
        st.sampled_from(["", "0", "-1", "1e400", "nan", "{", "[]", "null", "50", "²", "x" * 300]),
    )

    @settings(
        max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(
        step=st.sampled_from(["1", "2", "3", "4", "5", "6", "7", "", "x"]),
        fields=st.dictionaries(st.sampled_from(FIELD_NAMES), text, max_size=12),
    )
    def check(step: str, fields: dict[str, str]) -> None:
        data = fields | {"csrf_token": csrf, "step": step, "draft": ABOUT["key"]}
        answer = client.post(WIZARD, data=data, follow_redirects=False)
        assert answer.status_code in (200, 303, 409, 422), (answer.status_code, data)

    check()
