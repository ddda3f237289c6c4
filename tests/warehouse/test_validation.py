"""Validation rules, as pure functions: every bad input names its field, nothing is written."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from splitlab.domain import Status
from splitlab.errors import ConflictError, SplitlabError, ValidationError
from splitlab.warehouse import ExperimentSummary, Kind, derive_id, parse_item
from splitlab.warehouse.validation import error_entry, to_us
from tests.warehouse.conftest import RUNNING, START

NOW = to_us(START + timedelta(days=10))
STOPPED = ExperimentSummary("old", Status.STOPPED, frozenset({"control", "b"}), START)
WITH_PRE = ExperimentSummary(
    "cuped", Status.RUNNING, frozenset({"control", "b"}), START, timedelta(days=7)
)
EXPERIMENTS = {e.key: e for e in (RUNNING, STOPPED, WITH_PRE)}


def parse(**fields: Any) -> Any:
    item = {"experimentKey": "checkout", "userKey": "u1", "eventType": "purchase"} | fields
    item = {k: v for k, v in item.items() if v is not ...}
    return parse_item(item, lookup=EXPERIMENTS.get, now=NOW)


def rejected(**fields: Any) -> SplitlabError:
    with pytest.raises(SplitlabError) as caught:
        parse(**fields)
    return caught.value


def field_of(error: SplitlabError) -> str:
    return str(error_entry(error)["field"])


def test_an_event_without_event_id_is_keyed_by_experiment_user_and_type() -> None:
    fact = parse(value=12.5, props={"sku": "a"})
    assert fact.kind is Kind.EVENT
    assert fact.event_id == fact.key == derive_id("checkout", "u1", "purchase")
    assert fact.value == 12.5
    assert fact.properties == '{"sku":"a"}'
    assert fact.occurred_us == NOW


def test_a_client_event_id_is_the_key_and_ids_accept_the_id_aliases() -> None:
    fact = parse(experimentKey=..., experimentId="checkout", variantId="b", eventId="e-1")
    assert (fact.key, fact.event_id, fact.variant_key) == ("e-1", "e-1", "b")


def test_an_exposure_is_keyed_by_experiment_and_unit() -> None:
    fact = parse(eventType="exposure", variantKey="b", props={"country": "NL"})
    assert fact.kind is Kind.EXPOSURE
    assert fact.key == derive_id("checkout", "u1")
    assert fact.event_id == derive_id("checkout", "u1", "exposure")


def test_timestamps_iso_naive_and_epoch() -> None:
    iso = parse(occurredAt="2024-01-05T12:00:00Z").occurred_us
    assert parse(occurredAt="2024-01-05T12:00:00").occurred_us == iso
    assert parse(occurredAt=iso / 1_000_000).occurred_us == iso
    assert parse(occurredAt=iso // 1000).occurred_us == iso  # milliseconds


@pytest.mark.parametrize(
    ("fields", "field", "error_type"),
    [
        ({"experimentKey": "nope"}, "experimentKey", ValidationError),
        ({"experimentId": "nope", "experimentKey": ...}, "experimentId", ValidationError),
        ({"variantKey": "treatment"}, "variantKey", ValidationError),
        ({"experimentKey": "old"}, "experimentKey", ConflictError),
        ({"userKey": ...}, "userKey", ValidationError),
        ({"userKey": "  "}, "userKey", ValidationError),
        ({"userKey": ["u"]}, "userKey", ValidationError),
        ({"eventType": ""}, "eventType", ValidationError),
        ({"value": float("nan")}, "value", ValidationError),
        ({"value": float("inf")}, "value", ValidationError),
        ({"value": "12"}, "value", ValidationError),
        ({"value": True}, "value", ValidationError),
        ({"occurredAt": "yesterday"}, "occurredAt", ValidationError),
        ({"occurredAt": "2024-01-11T00:06:00Z"}, "occurredAt", ValidationError),  # +6 min
        ({"occurredAt": "2023-12-31T00:00:00Z"}, "occurredAt", ValidationError),  # pre-start
        ({"props": {"blob": "x" * 9000}}, "props", ValidationError),
        ({"props": [1, 2]}, "props", ValidationError),
        ({"experimentKey": ...}, "experimentKey", ValidationError),  # no id, no experiment
        ({"eventType": "exposure", "variantKey": ...}, "variantKey", ValidationError),
    ],
)
def test_bad_input_is_rejected_naming_the_field(
    fields: dict[str, Any], field: str, error_type: type[SplitlabError]
) -> None:
    error = rejected(**fields)
    assert type(error) is error_type
    assert field_of(error) == field
    assert field in error.message


def test_a_variant_of_another_experiment_is_named_with_the_valid_ones() -> None:
    error = rejected(experimentKey="checkout", variantKey="treatment")
    assert error.message == (
        "variantKey: is not a variant of the experiment "
        "('treatment'; the variants of 'checkout': b, control)"
    )


def test_not_running_is_a_409() -> None:
    assert rejected(experimentKey="old").status == 409


def test_the_pre_period_extends_the_window_for_events_but_not_exposures() -> None:
    day_before = "2023-12-31T00:00:00Z"
    assert parse(experimentKey="cuped", occurredAt=day_before).occurred_us < to_us(START)
    error = rejected(experimentKey="cuped", occurredAt="2023-12-20T00:00:00Z")
    assert "pre-period" in error.message
    exposure = rejected(
        experimentKey="cuped", eventType="exposure", variantKey="b", occurredAt=day_before
    )
    assert field_of(exposure) == "occurredAt"


def test_an_event_without_experiment_but_with_an_id_is_fine() -> None:
    fact = parse(experimentKey=..., eventId="x-9")
    assert fact.experiment_key is None and fact.key == "x-9"


def test_props_just_under_the_limit_pass() -> None:
    assert parse(props={"blob": "x" * 8000}).properties.startswith('{"blob"')
