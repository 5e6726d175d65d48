"""Every strategy against hand-computed shares, on small Polars tables (no lake)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.mixtures import MixtureError, apply_caps, effective_groups, group_shares, resolve_frame
from schemas.mixture import Manifest, MixtureSpec


def table(sizes: dict[str, list[int]], **extra: list) -> pl.DataFrame:
    """Episodes frame: one row per episode with n_steps; groups by dataset."""
    rows = []
    for ds, steps in sizes.items():
        for i, n in enumerate(steps):
            rows.append({"episode_id": f"ep_{ds}_{i:03d}", "dataset": ds, "n_steps": n, "duration_s": n / 10.0})
    frame = pl.DataFrame(rows)
    for name, values in extra.items():
        frame = frame.with_columns(pl.Series(name, values))
    return frame


def shares(manifest) -> dict[str, float]:
    return {g.group: g.requested_share for g in manifest.groups}


def test_natural_shares_are_proportional_to_size() -> None:
    spec = MixtureSpec(name="n", quality=[])
    got, _ = group_shares(spec, {"a": 60, "b": 30, "c": 10})
    assert got == pytest.approx({"a": 0.6, "b": 0.3, "c": 0.1})


def test_uniform_gives_every_group_the_same_share() -> None:
    got, _ = group_shares(MixtureSpec(name="u", strategy="uniform"), {"a": 60, "b": 30, "c": 10})
    assert got == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})


def test_temperature_uses_size_to_the_power_tau() -> None:
    got, _ = group_shares(MixtureSpec(name="t", strategy="temperature", tau=0.5), {"a": 100, "b": 25, "c": 4})
    # sqrt: 10, 5, 2 -> 10/17, 5/17, 2/17
    assert got == pytest.approx({"a": 10 / 17, "b": 5 / 17, "c": 2 / 17})


def test_weighted_normalises_explicit_weights() -> None:
    spec = MixtureSpec(name="w", strategy="weighted", weights={"a": 1.0, "b": 3.0})
    got, warnings = group_shares(spec, {"a": 500, "b": 10, "c": 7})
    assert got == pytest.approx({"a": 0.25, "b": 0.75, "c": 0.0})
    assert any("c" in w for w in warnings)


def test_balance_weights_reproduces_octo_arithmetic_exactly() -> None:
    # octo/data/dataset.py make_interleaved_dataset:
    #   if balance_weights: sample_weights = np.array(sample_weights) * np.array(dataset_sizes)
    #   sample_weights = np.array(sample_weights) / np.sum(sample_weights)
    # with dataset_sizes = num_transitions (steps) of each dataset.
    names = ["fractal20220817_data", "kuka", "bridge_orig", "taco_play"]
    sample_weights = [0.54087122203, 0.8341046294, 1.0, 2.0]
    dataset_sizes = [3786400, 2455879, 2135463, 213972]
    octo = np.array(sample_weights) * np.array(dataset_sizes)
    octo = octo / np.sum(octo)
    spec = MixtureSpec(name="soup", strategy="weighted", balance_weights=True, unit="steps",
                       weights=dict(zip(names, sample_weights, strict=True)))
    steps = {n: float(s) for n, s in zip(names, dataset_sizes, strict=True)}
    got, _ = group_shares(spec, steps, steps=steps)
    assert [got[n] for n in names] == pytest.approx(octo.tolist(), rel=1e-12, abs=0)


def test_balance_weights_multiplies_by_steps_even_when_the_unit_is_episodes() -> None:
    frame = table({"a": [10] * 4, "b": [40] * 2})  # a: 40 steps in 4 episodes, b: 80 steps in 2
    spec = MixtureSpec(name="w", strategy="weighted", weights={"a": 1.0, "b": 1.0}, balance_weights=True,
                       unit="episodes", quality=[])
    m = resolve_frame(spec, frame)
    assert shares(m) == pytest.approx({"a": 40 / 120, "b": 80 / 120}, abs=1e-9)


def test_capped_redistributes_the_excess_to_uncapped_groups() -> None:
    units, capped = apply_caps({"a": 0.7, "b": 0.2, "c": 0.1}, 100, max_share=0.5)
    # a is held at 50; the other 50 go to b and c in the ratio 2:1
    assert units == pytest.approx({"a": 50.0, "b": 100 / 3, "c": 50 / 3})
    assert capped == {"a"}


def test_caps_cascade_until_no_group_is_over() -> None:
    units, capped = apply_caps({"a": 0.6, "b": 0.3, "c": 0.1}, 100, max_units=35)
    # a -> 35; b gets 65*0.75 = 48.75 > 35 -> 35; c gets the remaining 30
    assert units == pytest.approx({"a": 35.0, "b": 35.0, "c": 30.0})
    assert capped == {"a", "b"}


def test_a_cap_below_the_budget_is_an_error_that_names_a_group() -> None:
    with pytest.raises(MixtureError, match=r"'a'.*raise the cap|budget is 100"):
        apply_caps({"a": 0.5, "b": 0.5}, 100, max_units=30)


def test_a_weight_for_a_group_that_does_not_exist_is_an_error_naming_it() -> None:
    spec = MixtureSpec(name="w", strategy="weighted", weights={"a": 1.0, "bridge_typo": 2.0})
    with pytest.raises(MixtureError, match="bridge_typo"):
        group_shares(spec, {"a": 10, "b": 5})


def test_unknown_weighted_groups_can_be_ignored_for_imported_recipes() -> None:
    spec = MixtureSpec(name="w", strategy="weighted", weights={"a": 1.0, "zzz": 2.0}, missing_groups="ignore")
    got, warnings = group_shares(spec, {"a": 10, "b": 5})
    assert got == {"a": 1.0, "b": 0.0}
    assert any("zzz" in w for w in warnings)


def test_all_zero_weights_are_an_error() -> None:
    spec = MixtureSpec(name="w", strategy="weighted", weights={"a": 0.0})
    with pytest.raises(MixtureError, match="weight 0"):
        group_shares(spec, {"a": 10})


def test_an_empty_selection_is_an_error() -> None:
    with pytest.raises(MixtureError, match="selects no episodes"):
        resolve_frame(MixtureSpec(name="e"), pl.DataFrame(
            schema={"episode_id": pl.String, "dataset": pl.String, "n_steps": pl.Int64, "duration_s": pl.Float64}))


def test_coverage_balances_over_semantic_clusters() -> None:
    frame = table({"d": [5] * 10}, cluster=[0, 0, 0, 0, 0, 0, 1, 1, 1, 2])
    spec = MixtureSpec(name="c", strategy="coverage", budget=9, quality=[])
    assert spec.group_by == "cluster"
    m = resolve_frame(spec, frame)
    assert shares(m) == pytest.approx({"0": 1 / 3, "1": 1 / 3, "2": 1 / 3})
    assert {g.group: g.achieved_units for g in m.groups} == {"0": 3.0, "1": 3.0, "2": 3.0}
    assert {g.group: g.max_repeats for g in m.groups}["2"] == 3  # the singleton cluster is upsampled


def test_match_reweights_toward_the_target_cluster_distribution() -> None:
    frame = table({"train": [5] * 8}, cluster=[0, 0, 0, 0, 1, 1, 2, 2])
    target = table({"deploy": [5] * 4}, cluster=[1, 1, 1, 3])
    spec = MixtureSpec(name="m", strategy="match", target='dataset == "deploy"', budget=8, quality=[])
    m = resolve_frame(spec, frame, target=target)
    # target: cluster 1 = 3/4, cluster 3 = 1/4 (absent from training) -> training share: 1 only
    assert shares(m) == pytest.approx({"0": 0.0, "1": 1.0, "2": 0.0})
    assert any("'3'" in w and "25.0%" in w for w in m.warnings)


def test_match_with_no_overlap_is_an_error() -> None:
    spec = MixtureSpec(name="m", strategy="match", target="x")
    with pytest.raises(MixtureError, match="nothing to match"):
        group_shares(spec, {"0": 5}, target={"9": 3})


def test_quality_gates_drop_flagged_failed_and_bad_tagged_episodes() -> None:
    frame = table({"a": [3] * 5}, quality_flags=[[], ["frozen_camera"], [], [], []],
                  success=[True, True, False, None, True], tags=[[], [], [], ["bad"], ["ok"]])
    m = resolve_frame(MixtureSpec(name="q"), frame)
    assert m.excluded == {"gate:bad_tags": 1, "gate:failed": 1, "gate:flagged": 1}
    assert [e.episode_id for e in m.episodes] == ["ep_a_000", "ep_a_004"]


def test_source_dedup_keeps_one_episode_per_fingerprint() -> None:
    frame = table({"a": [3] * 4}).with_columns(
        pl.Series("source", [{"fingerprint": f} for f in ["x", "y", "x", "x"]]))
    m = resolve_frame(MixtureSpec(name="d", dedup="source", quality=[]), frame)
    assert m.excluded == {"dedup:source": 2}
    assert [e.episode_id for e in m.episodes] == ["ep_a_000", "ep_a_001"]


def test_episode_budget_is_met_exactly_with_largest_remainders() -> None:
    frame = table({"a": [1] * 10, "b": [1] * 10, "c": [1] * 10})
    m = resolve_frame(MixtureSpec(name="u", strategy="uniform", budget=10, quality=[]), frame)
    assert sum(e.repeats for e in m.episodes) == 10
    assert sorted(g.achieved_units for g in m.groups) == [3.0, 3.0, 4.0]


def test_upsampling_repeats_every_episode_then_fills_the_remainder() -> None:
    frame = table({"a": [1] * 2, "b": [1] * 8})
    m = resolve_frame(MixtureSpec(name="u", strategy="uniform", budget=20, quality=[]), frame)
    reps = {e.episode_id: e.repeats for e in m.episodes}
    assert [reps["ep_a_000"], reps["ep_a_001"]] == [5, 5]
    assert sorted(reps[f"ep_b_{i:03d}"] for i in range(8)) == [1, 1, 1, 1, 1, 1, 2, 2]


def test_step_weights_give_each_group_its_share_of_steps() -> None:
    frame = table({"a": [10, 30], "b": [5, 5, 5, 5]})
    m = resolve_frame(MixtureSpec(name="u", strategy="uniform", unit="steps", quality=[]), frame)
    by_group: dict[str, float] = {}
    for e in m.episodes:
        by_group[e.group] = by_group.get(e.group, 0.0) + e.weight
    assert by_group == pytest.approx({"a": 0.5, "b": 0.5})
    assert {e.episode_id: e.weight for e in m.episodes}["ep_a_001"] == pytest.approx(0.5 * 30 / 40)


def test_hours_are_the_unit_when_asked() -> None:
    frame = table({"a": [36000], "b": [36000, 36000]})  # 1 h, 2 h
    m = resolve_frame(MixtureSpec(name="h", unit="hours", quality=[]), frame)
    assert {g.group: g.units_available for g in m.groups} == {"a": 1.0, "b": 2.0}
    assert m.budget == 3.0


def test_effective_groups_is_exp_entropy() -> None:
    assert effective_groups([0.25] * 4) == pytest.approx(4.0)
    assert effective_groups([1.0, 0.0]) == pytest.approx(1.0)
    assert effective_groups([0.5, 0.25, 0.25]) == pytest.approx(math.exp(1.5 * math.log(2)))


def test_group_by_a_struct_path_and_by_tag() -> None:
    frame = table({"a": [1, 1, 1]}).with_columns(
        pl.Series("embodiment", [{"robot": r} for r in ["widowx", "franka", "franka"]]),
        pl.Series("tags", [["zeta", "alpha"], [], ["beta"]]))
    m = resolve_frame(MixtureSpec(name="g", group_by="embodiment.robot", quality=[]), frame)
    assert {g.group: g.episodes for g in m.groups} == {"franka": 2, "widowx": 1}
    m = resolve_frame(MixtureSpec(name="g", group_by="tag", quality=[]), frame)
    assert {g.group: g.episodes for g in m.groups} == {"(none)": 1, "alpha": 1, "beta": 1}


def test_grouping_by_a_missing_column_names_it() -> None:
    with pytest.raises(MixtureError, match="scene"):
        resolve_frame(MixtureSpec(name="g", group_by="scene", quality=[]), table({"a": [1]}))


def test_spec_validation_names_the_missing_parameter() -> None:
    with pytest.raises(ValueError, match="weights"):
        MixtureSpec(name="w", strategy="weighted")
    with pytest.raises(ValueError, match="max_share"):
        MixtureSpec(name="c", strategy="capped")
    with pytest.raises(ValueError, match="target"):
        MixtureSpec(name="m", strategy="match")


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.lists(st.integers(1, 40), min_size=1, max_size=6), min_size=1, max_size=4),
       strategy=st.sampled_from(["natural", "uniform", "temperature"]), unit=st.sampled_from(["episodes", "steps"]),
       budget=st.integers(1, 60), seed=st.integers(0, 2**31), order=st.randoms(use_true_random=False))
def test_resolution_is_deterministic_and_independent_of_row_order(sizes, strategy, unit, budget, seed,
                                                                  order) -> None:
    frame = table({f"g{i}": s for i, s in enumerate(sizes)})
    spec = MixtureSpec(name="p", strategy=strategy, unit=unit, budget=budget, seed=seed, quality=[])
    first = resolve_frame(spec, frame).to_json()
    rows = list(range(frame.height))
    order.shuffle(rows)
    assert resolve_frame(spec, frame[rows]).to_json() == first
    m = Manifest.from_json(first)
    assert sum(e.weight for e in m.episodes) == pytest.approx(1.0)
    if unit == "episodes":
        assert sum(e.repeats for e in m.episodes) == budget
