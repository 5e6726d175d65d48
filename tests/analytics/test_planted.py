"""Analytics on synthetic embeddings with planted structure, where the right answer is known exactly."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from curate.analytics.coverage import coverage_of
from curate.analytics.duplicates import near_duplicates_of
from curate.analytics.shift import shift_of
from curate.analytics.vectors import choose_k, frechet_distance, kmeans, knn_cosine_distance


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def planted_clusters(sizes: list[int], *, dim: int = 64, spread: float = 0.05, seed: int = 0) -> tuple[
        np.ndarray, np.ndarray]:
    """Well-separated clusters: orthogonal-ish random centres plus small noise."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.normal(size=(len(sizes), dim)))
    rows, labels = [], []
    for i, n in enumerate(sizes):
        rows.append(centres[i] + spread * rng.normal(size=(n, dim)))
        labels += [i] * n
    return _unit(np.concatenate(rows)), np.array(labels)


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_kmeans_recovers_planted_clusters_exactly() -> None:
    x, truth = planted_clusters([300, 200, 100, 20, 10])
    res = kmeans(x, 5, seed=1)
    assert _same_partition(res.labels, truth)


def test_choose_k_finds_the_planted_number_of_clusters() -> None:
    x, _ = planted_clusters([150, 120, 90, 60, 40, 30], seed=3)
    k, scores = choose_k(x, seed=0)
    assert k == 6
    assert scores[6] == max(scores.values())


def test_coverage_reports_planted_sizes_tail_and_dataset_coverage() -> None:
    sizes = [400, 300, 200, 60, 40]  # mean 200: clusters under 100 are tail -> 100 of 1000 episodes
    x, truth = planted_clusters(sizes, seed=5)
    datasets = np.where(truth == 4, "rare_only", np.where(truth % 2 == 0, "a", "b"))
    meta = pl.DataFrame({"episode_id": [f"e{i}" for i in range(len(x))], "dataset": datasets})
    cov = coverage_of(x, meta)
    assert cov.summary["k"] == 5 and cov.summary["k_chosen_automatically"]
    assert sorted(cov.clusters["episodes"].to_list(), reverse=True) == sizes
    assert cov.summary["tail_clusters"] == 2
    assert cov.summary["tail_share"] == pytest.approx(0.1)
    assert cov.summary["clusters_covered_by_one_dataset"] == 5
    rare = cov.by_dataset.filter(pl.col("dataset") == "rare_only")
    assert rare.height == 1 and rare["episodes"][0] == 40
    assert cov.episodes.select("x", "y").null_count().sum_horizontal()[0] == 0


def test_coverage_honours_an_explicit_k() -> None:
    x, _ = planted_clusters([50, 50, 50], seed=2)
    cov = coverage_of(x, pl.DataFrame({"episode_id": [str(i) for i in range(150)]}), k=2)
    assert cov.summary["k"] == 2 and not cov.summary["k_chosen_automatically"]


def test_near_duplicates_finds_exactly_the_planted_copies() -> None:
    rng = np.random.default_rng(7)
    base = _unit(rng.normal(size=(2000, 64)))
    originals = rng.choice(2000, size=30, replace=False)
    copies = _unit(base[originals] + 0.01 * rng.normal(size=(30, 64)))
    triple = _unit(base[originals[:5]] + 0.01 * rng.normal(size=(5, 64)))  # five originals get a second copy
    x = np.concatenate([base, copies, triple])
    ids = [f"e{i}" for i in range(len(x))]
    table, summary = near_duplicates_of(x, ids, threshold=0.95, cluster_size=200)
    assert summary["groups"] == 30
    assert summary["removable"] == 35
    assert summary["episodes_in_groups"] == 65
    expected = {frozenset({f"e{o}", f"e{2000 + i}"} | ({f"e{2030 + i}"} if i < 5 else set()))
                for i, o in enumerate(originals)}
    found = {frozenset(g["episode_id"].to_list()) for _, g in table.group_by("group")}
    assert found == expected
    assert (table.group_by("group").agg((~pl.col("is_duplicate")).sum())["is_duplicate"] == 1).all()


def test_near_duplicates_of_distinct_vectors_is_empty() -> None:
    x = _unit(np.random.default_rng(1).normal(size=(500, 32)))
    table, summary = near_duplicates_of(x, threshold=0.99)
    assert table.height == 0 and summary["removable"] == 0


def test_shift_flags_the_planted_uncovered_region() -> None:
    ref, _ = planted_clusters([300, 300, 300], seed=11, spread=0.08)
    covered_part, _ = planted_clusters([300, 300, 300], seed=11, spread=0.08)  # same centres, same distribution
    rng = np.random.default_rng(99)
    novel_centre = _unit(rng.normal(size=(1, 64)))
    novel = _unit(novel_centre + 0.08 * rng.normal(size=(40, 64)))
    target = np.concatenate([covered_part[::9], novel])  # 100 covered + 40 novel
    ids = [f"t{i}" for i in range(len(target))]
    audit = shift_of(ref, target, target_ids=ids, seed=0)
    novel_ids = {f"t{i}" for i in range(100, 140)}
    assert set(audit.target.head(40)["episode_id"].to_list()) == novel_ids
    assert audit.target.filter(pl.col("episode_id").is_in(list(novel_ids)))["covered"].sum() == 0
    assert audit.summary["target_covered_share"] == pytest.approx(100 / 140, abs=0.03)
    only = audit.clusters.filter(pl.col("status") == "target_only")
    assert only.height == 1 and only["target_episodes"][0] == 40
    same = shift_of(ref, covered_part, seed=0)
    assert same.summary["frechet_distance"] < audit.summary["frechet_distance"]
    assert same.summary["target_covered_share"] > 0.9


def test_knn_distances_match_brute_force_and_exclude_self() -> None:
    x = _unit(np.random.default_rng(4).normal(size=(300, 16)))
    d = knn_cosine_distance(x, x, k=3, exclude_self=True)
    full = 1 - x @ x.T
    np.fill_diagonal(full, np.inf)
    np.testing.assert_allclose(d, np.sort(full, axis=1)[:, :3], atol=1e-5)


def test_frechet_distance_is_zero_for_identical_sets_and_grows_with_a_shift() -> None:
    x = np.random.default_rng(0).normal(size=(500, 8))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(x, x + 1.0) == pytest.approx(8.0, rel=1e-3)


def test_shift_of_too_small_a_reference_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at least 2 reference"):
        shift_of(np.ones((1, 4), dtype=np.float32), np.ones((3, 4), dtype=np.float32))


def test_vectorised_components_match_a_plain_union_find() -> None:
    from curate.analytics.duplicates import _components

    rng = np.random.default_rng(0)
    for m, e in ((1, 0), (50, 20), (300, 280), (1000, 5000)):
        a, b = rng.integers(0, m, e), rng.integers(0, m, e)
        parent = list(range(m))

        def find(i: int, parent: list[int] = parent) -> int:
            while parent[i] != i:
                i = parent[i]
            return i

        for x, y in zip(a.tolist(), b.tolist(), strict=True):
            rx, ry = find(x), find(y)
            parent[max(rx, ry)] = min(rx, ry)
        assert _components(m, a, b).tolist() == [find(i) for i in range(m)]
