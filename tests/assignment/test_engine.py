"""assign(): the order of checks, sticky bucketing, forced variants, holdouts, config I/O."""

from __future__ import annotations

import json
import pickle

import pytest

from splitlab.assignment import (
    REASONS,
    Assignment,
    ExperimentConfig,
    Holdout,
    InMemoryStickyStore,
    Namespace,
    StickyStore,
    VariantConfig,
    assign,
    bucket_ranges,
    choose_variant,
    gb_hash,
    in_namespace,
)

UNITS = [f"user-{i}" for i in range(2000)]


def config(**overrides: object) -> ExperimentConfig:
    fields: dict[str, object] = {
        "key": "checkout",
        "variants": (
            VariantConfig("control", 0.5, {"color": "blue"}),
            VariantConfig("treatment", 0.5, {"color": "green"}),
        ),
    }
    fields.update(overrides)
    return ExperimentConfig(**fields)  # type: ignore[arg-type]


def test_assigns_by_hash_of_seed_and_unit() -> None:
    cfg = config(seed="s1", variants=(VariantConfig("a", 0.1), VariantConfig("b", 0.9)))
    for unit in UNITS[:300]:
        n = gb_hash("s1", unit, 2)
        result = assign(cfg, unit)
        expected = ("a", "b")[choose_variant(n, bucket_ranges(2, 1, [0.1, 0.9]))]
        assert result == Assignment(expected, None, True, "assigned", n)


def test_seed_defaults_to_key_and_payload_follows_variant() -> None:
    cfg = config()
    result = assign(cfg, "user-7")
    assert result.bucket == gb_hash("checkout", "user-7", 2)
    assert result.payload == {"color": "blue" if result.variant == "control" else "green"}
    assert cfg.effective_seed == "checkout"


def test_version_1_is_supported_and_unknown_versions_assign_no_one() -> None:
    assert assign(config(hash_version=1), "user-1").bucket == gb_hash("checkout", "user-1", 1)
    result = assign(config(hash_version=99), "user-1")
    assert result == Assignment(None, None, False, "hash_version", None)


def test_reduced_and_zero_coverage() -> None:
    reduced = [assign(config(coverage=0.4), u) for u in UNITS]
    out = [r for r in reduced if not r.in_experiment]
    assert {r.reason for r in out} == {"coverage"}
    assert 0.55 < len(out) / len(UNITS) < 0.65
    # Raising coverage never moves an assigned unit to another variant.
    full = [assign(config(coverage=1.0), u) for u in UNITS]
    assert all(
        f.variant == r.variant for f, r in zip(full, reduced, strict=True) if r.in_experiment
    )
    assert all(not assign(config(coverage=0), u).in_experiment for u in UNITS[:200])


def test_missing_unit_inactive_and_targeting() -> None:
    assert assign(config(), "").reason == "missing_unit"
    assert assign(config(active=False), "user-1").reason == "inactive"
    cfg = config(condition={"country": {"$in": ["NL", "BE"]}})
    assert assign(cfg, "user-1", {"country": "DE"}).reason == "not_targeted"
    assert assign(cfg, "user-1").reason == "not_targeted"
    assert assign(cfg, "user-1", {"country": "NL"}).in_experiment


def test_namespaces_make_experiments_mutually_exclusive() -> None:
    left = config(key="left", namespace=Namespace("checkout-ns", 0.0, 0.5))
    right = config(key="right", namespace=Namespace("checkout-ns", 0.5, 1.0))
    for unit in UNITS:
        a, b = assign(left, unit), assign(right, unit)
        assert a.in_experiment != b.in_experiment
        assert (a.in_experiment) == in_namespace(unit, "checkout-ns", 0.0, 0.5)
        assert (a.reason if not a.in_experiment else b.reason) == "namespace"


def test_holdout_excludes_the_same_units_from_every_experiment() -> None:
    holdout = Holdout("global-2024", 0.1)
    first = [assign(config(key="one", holdout=holdout), u) for u in UNITS]
    second = [assign(config(key="two", holdout=holdout), u) for u in UNITS]
    held = [r.reason == "holdout" for r in first]
    assert held == [r.reason == "holdout" for r in second]
    assert held == [gb_hash("global-2024", u, 2) < 0.1 for u in UNITS]
    assert 0.08 < sum(held) / len(UNITS) < 0.12
    assert all(r.variant is None and not r.in_experiment for r in first if r.reason == "holdout")


def test_forced_variants_win_even_when_inactive_or_untargeted() -> None:
    cfg = config(forced_variants={"qa-1": "treatment"}, condition={"never": True}, active=False)
    assert assign(cfg, "qa-1") == Assignment("treatment", {"color": "green"}, True, "forced", None)
    assert assign(cfg, "user-1").reason == "inactive"
    with pytest.raises(ValueError, match="unknown variants"):
        config(forced_variants={"qa-1": "nope"})


class CountingStore(InMemoryStickyStore):
    def __init__(self) -> None:
        super().__init__()
        self.sets = 0

    def set(self, experiment_key: str, seed: str, unit_id: str, variant_key: str) -> None:
        self.sets += 1
        super().set(experiment_key, seed, unit_id, variant_key)


def test_sticky_bucketing_survives_a_weight_change() -> None:
    store = CountingStore()
    assert isinstance(store, StickyStore)
    before = config(seed="s")
    first = {u: assign(before, u, sticky=store).variant for u in UNITS}
    assert store.sets == len(UNITS) and len(store) == len(UNITS)

    after = before.with_weights([0.1, 0.9])
    without = {u: assign(after, u).variant for u in UNITS}
    moved = sum(first[u] != without[u] for u in UNITS)
    assert moved > 200  # the weight change alone would move ~40% of units ...

    sticky = [assign(after, u, sticky=store) for u in UNITS]
    assert all(r.reason == "sticky" for r in sticky)  # ... the sticky store moves none
    assert {u: r.variant for u, r in zip(UNITS, sticky, strict=True)} == first
    assert store.sets == len(UNITS)  # sticky hits are not re-written

    new_units = [f"new-{i}" for i in range(2000)]
    fresh = [assign(after, u, sticky=store).variant for u in new_units]
    assert 0.07 < fresh.count("control") / len(fresh) < 0.13  # newcomers get new weights


def test_new_seed_is_a_new_experiment_for_sticky_bucketing() -> None:
    store = InMemoryStickyStore()
    old = {u: assign(config(seed="v1"), u, sticky=store).variant for u in UNITS}
    new = [assign(config(seed="v2"), u, sticky=store) for u in UNITS]
    assert all(r.reason == "assigned" for r in new)
    assert sum(old[u] != r.variant for u, r in zip(UNITS, new, strict=True)) > 800
    assert store.assignments("checkout", "v2") == {
        u: r.variant for u, r in zip(UNITS, new, strict=True)
    }


def test_sticky_entry_for_a_removed_variant_is_ignored() -> None:
    store = InMemoryStickyStore()
    store.set("checkout", "checkout", "user-1", "retired")
    assert assign(config(), "user-1", sticky=store).reason == "assigned"
    assert store.get("checkout", "checkout", "user-1") in {"control", "treatment"}


def test_sticky_wins_over_targeting() -> None:
    store = InMemoryStickyStore()
    store.set("checkout", "checkout", "user-1", "treatment")
    cfg = config(condition={"country": "NL"})
    assert assign(cfg, "user-1", {"country": "DE"}, sticky=store).reason == "sticky"


def test_reasons_are_all_reachable() -> None:
    store = InMemoryStickyStore()
    store.set("k", "k", "sticky-unit", "a")
    seen = set()
    variants = (VariantConfig("a", 0.5), VariantConfig("b", 0.5))
    cases = [
        (dict(), "u", None),
        (dict(forced_variants={"f": "a"}), "f", None),
        (dict(), "sticky-unit", store),
        (dict(), "", None),
        (dict(active=False), "u", None),
        (dict(hash_version=3), "u", None),
        (dict(condition={"x": 1}), "u", None),
        (dict(namespace=Namespace("n", 0, 0)), "u", None),
        (dict(holdout=Holdout("h", 1.0)), "u", None),
        (dict(coverage=0), "u", None),
    ]
    for overrides, unit, sticky in cases:
        cfg = ExperimentConfig(key="k", variants=variants, **overrides)  # type: ignore[arg-type]
        seen.add(assign(cfg, unit, sticky=sticky).reason)
    assert seen == set(REASONS)


def test_config_round_trips_through_json() -> None:
    cfg = ExperimentConfig(
        key="pricing",
        seed="pricing-2",
        hash_version=1,
        variants=(VariantConfig("a", 0.3, {"price": 9}), VariantConfig("b", 0.7, None)),
        coverage=0.8,
        namespace=Namespace("ns", 0.2, 0.6),
        condition={"$or": [{"country": "NL"}, {"plan": {"$in": ["pro"]}}]},
        forced_variants={"qa": "b"},
        holdout=Holdout("hold", 0.05),
        active=False,
    )
    wire = json.loads(json.dumps(cfg.to_dict()))
    assert wire["hashVersion"] == 1 and wire["forcedVariants"] == {"qa": "b"}
    assert ExperimentConfig.from_dict(wire) == cfg
    assert ExperimentConfig.from_dict({**wire, "futureField": 1}) == cfg
    minimal = ExperimentConfig.from_dict({"key": "x", "variants": [{"key": "a", "weight": 1}]})
    assert minimal.hash_version == 2 and minimal.coverage == 1.0 and minimal.active


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"variants": ()}, "at least one variant"),
        ({"variants": (VariantConfig("a", 0.5), VariantConfig("a", 0.5))}, "duplicate"),
        ({"key": ""}, "non-empty"),
        ({"coverage": float("nan")}, "finite"),
    ],
)
def test_invalid_configs_are_rejected(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config(**overrides)


def test_invalid_parts_are_rejected() -> None:
    with pytest.raises(ValueError):
        VariantConfig("a", -0.1)
    with pytest.raises(ValueError):
        Namespace("n", 0.6, 0.4)
    with pytest.raises(ValueError):
        Holdout("h", 1.5)
    with pytest.raises(ValueError, match="weights"):
        config().with_weights([1.0])


def test_bad_weights_fall_back_to_equal_weights() -> None:
    cfg = config(variants=(VariantConfig("a", 0.7), VariantConfig("b", 0.6)))
    assert cfg.bucket_ranges() == [(0.0, 0.5), (0.5, 1.0)]


def test_config_pickles_after_compilation() -> None:
    cfg = config(condition={"plan": {"$in": ["pro"]}}, namespace=Namespace("ns", 0, 1))
    before = assign(cfg, "user-1", {"plan": "pro"})
    copy = pickle.loads(pickle.dumps(cfg))
    assert copy == cfg
    assert assign(copy, "user-1", {"plan": "pro"}) == before


def test_compiled_experiment_is_reused_and_matches_assign() -> None:
    cfg = config(seed="z")
    assert cfg.compiled is cfg.compiled
    assert [cfg.compiled.assign(u) for u in UNITS[:50]] == [assign(cfg, u) for u in UNITS[:50]]
    assert cfg.compiled.bucket("user-1") == gb_hash("z", "user-1", 2)
    assert config(hash_version=1).compiled.bucket("user-1") == gb_hash("checkout", "user-1", 1)
