"""The policy contract: strict validation that names the field path, overlays resolved in
order with deep merges, and the policy hash."""

from __future__ import annotations

import pytest

from splitlab.analysis.snapshot import CheckName
from splitlab.decisions.policy import (
    BUILTIN,
    lift_threshold,
    merge,
    overlay_names,
    parse_policy,
    resolve,
)
from splitlab.errors import ValidationError


@pytest.mark.parametrize(
    ("document", "path", "message"),
    [
        (
            "guardrails:\n  rules:\n    - {metric: lat, max_ratio: 0.9}\n",
            "guardrails.rules[0].max_ratio",
            "must be > 1",
        ),
        ({"trust": {"critical": ["srm"]}}, "trust.critical", "unknown field"),
        (
            {"trust": {"critical_checks": ["srm", "nope"]}},
            "trust.critical_checks[1]",
            "Input should be",
        ),
        (
            {"primary": {"min_lift": {"metrics": {"conv": "five%"}}}},
            "primary.min_lift.metrics.conv",
            'must be a number (absolute) or a percentage such as "5%"',
        ),
        (
            {"primary": {"min_lift": {"default": -0.01}}},
            "primary.min_lift.default",
            "must not be negative",
        ),
        (
            {"segments": {"correction": "bh"}},
            "segments.correction",
            "Input should be 'holm' or 'bonferroni'",
        ),
        ({"bayesian": {"chance_to_win": 1.5}}, "bayesian.chance_to_win", "must be < 1"),
        ({"maturity": {"min_days": -1}}, "maturity.min_days", "must be ≥ 0"),
        ({"guardrails": {"rules": [{"max_ratio": 2}]}}, "guardrails.rules[0].metric", "required"),
        ({"value": {"units_per_day": float("nan")}}, "value.units_per_day", ""),
        ({"name": "sneaky"}, "name", "unknown field"),
        ("- a\n- list\n", "(document)", "must be a mapping"),
        ("trust: [unclosed\n", "(document)", "not valid YAML"),
    ],
)
def test_a_bad_policy_names_the_field_path(document: object, path: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_policy(document)  # type: ignore[arg-type]
    error = caught.value
    assert error.status == 422
    assert f"{path}: {message}" in error.message
    assert any(d["loc"] == [path] and message in d["msg"] for d in error.details)


def test_every_error_is_listed_not_only_the_first() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_policy({"trust": {"bogus": 1}, "maturity": {"min_days": "x"}})
    assert [d["loc"] for d in caught.value.details] == [["trust.bogus"], ["maturity.min_days"]]


def test_a_partial_document_overrides_only_what_it_names() -> None:
    policy = parse_policy("guardrails:\n  rules: [{metric: lr-latency-ms, max_ratio: 1.25}]\n")
    assert policy.guardrails.rules[0].max_ratio == 1.25
    assert policy.guardrails.rollback_when_running is True  # the built-in, untouched
    assert policy.trust == BUILTIN.trust
    assert parse_policy("") == BUILTIN and parse_policy(b"{}") == BUILTIN


def test_overlays_resolve_built_in_then_default_then_team_then_experiment() -> None:
    assert overlay_names(team="growth", key="exp") == ["default", "team-growth", "experiment-exp"]
    assert overlay_names(team=None, key="exp") == ["default", "experiment-exp"]
    policy = resolve(
        [
            ("default", {"maturity": {"min_days": 10, "min_units_per_variant": 500}}),
            ("team-growth", {"maturity": {"min_days": 14}, "trust": {"critical_checks": ["srm"]}}),
            ("experiment-exp", {"primary": {"min_lift": {"metrics": {"conv": "5%"}}}}),
        ]
    )
    assert policy.name == "experiment-exp"
    assert policy.maturity.min_days == 14  # the team's, over the default's 10
    assert policy.maturity.min_units_per_variant == 500  # deep merge keeps the default's
    assert policy.maturity.require_mature_windows is True  # the built-in's
    assert policy.trust.critical_checks == [CheckName.SRM]  # lists replace
    assert policy.primary.min_lift.threshold("conv") == ("relative", 0.05)
    assert policy.primary.min_lift.threshold("other") == ("absolute", 0.0)
    assert resolve([]) == BUILTIN and resolve([]).name == "default"


def test_a_stored_overlay_that_no_longer_validates_is_named_in_the_error() -> None:
    with pytest.raises(ValidationError, match=r"team-x.*maturity.min_days: must be ≥ 0"):
        resolve([("team-x", {"maturity": {"min_days": -3}})])


def test_merge_is_deep_and_does_not_touch_its_inputs() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    over = {"a": {"c": [3]}, "e": {"f": 1}}
    assert merge(base, over) == {"a": {"b": 1, "c": [3]}, "d": 1, "e": {"f": 1}}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1} and over == {"a": {"c": [3]}, "e": {"f": 1}}


def test_lifts_are_absolute_numbers_or_relative_percentages() -> None:
    assert lift_threshold(0.0043) == ("absolute", 0.0043)
    assert lift_threshold("5%") == ("relative", pytest.approx(0.05))
    assert lift_threshold(" 2.5 % ") == ("relative", pytest.approx(0.025))


def test_the_hash_follows_the_content_and_the_name() -> None:
    assert BUILTIN.policy_hash() == parse_policy({}).policy_hash()
    assert parse_policy({"maturity": {"min_days": 8}}).policy_hash() != BUILTIN.policy_hash()
    assert parse_policy({}, name="team-a").policy_hash() != BUILTIN.policy_hash()
    assert len(BUILTIN.policy_hash()) == 32
    copied = BUILTIN.model_copy(update={"name": "team-x"})  # hashed after BUILTIN: not stale
    assert copied.policy_hash() == parse_policy({}, name="team-x").policy_hash()
    assert copied.policy_hash() != BUILTIN.policy_hash()
