"""Coverage and long tail: semantic clusters of episode embeddings, their sizes, who covers them, a 2D map.

A cluster is in the *tail* when it holds fewer than `tail_ratio` x the mean cluster size (n / k) episodes;
the tail share is the fraction of episodes in tail clusters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from curate.analytics.vectors import choose_k, kmeans, pca_2d
from curate.embed import load_vectors
from curate.lake import Lake

TAIL_RATIO = 0.5


@dataclass
class Coverage:
    """Per-episode assignments (`episodes`), per-cluster table (`clusters`), per-dataset coverage
    (`by_dataset`, `by_embodiment`: long tables cluster x group -> episodes) and summary numbers."""

    episodes: pl.DataFrame
    clusters: pl.DataFrame
    by_dataset: pl.DataFrame
    by_embodiment: pl.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)
    centroids: np.ndarray | None = None


def coverage_of(vectors: np.ndarray, meta: pl.DataFrame, *, k: int | None = None, seed: int = 0,
                tail_ratio: float = TAIL_RATIO) -> Coverage:
    """Cluster `vectors` (rows aligned with `meta`: episode_id, and optionally dataset, embodiment).

    Args:
        k: number of clusters; None picks it by silhouette.
    """
    n = len(vectors)
    if n == 0:
        raise ValueError("no episodes to cluster")
    scores: dict[int, float] = {}
    if k is None:
        k, scores = choose_k(vectors, seed=seed)
    k = max(1, min(int(k), n))
    res = kmeans(vectors, k, seed=seed)
    xy = pca_2d(vectors, seed=seed)
    eps = meta.with_columns(pl.Series("cluster", res.labels, dtype=pl.Int32),
                            pl.Series("x", xy[:, 0]), pl.Series("y", xy[:, 1] if xy.shape[1] > 1 else xy[:, 0] * 0))
    for col in ("dataset", "embodiment"):
        if col not in eps.columns:
            eps = eps.with_columns(pl.lit("all").alias(col))
    sizes = eps.group_by("cluster").agg(pl.len().alias("episodes"), pl.col("dataset").n_unique().alias("datasets"),
                                        pl.col("embodiment").n_unique().alias("embodiments"))
    threshold = tail_ratio * n / k
    sizes = (sizes.with_columns((pl.col("episodes") / n).alias("share"),
                                (pl.col("episodes") < threshold).alias("tail"))
             .sort(["episodes", "cluster"], descending=[True, False]))
    by_ds = eps.group_by(["cluster", "dataset"]).agg(pl.len().alias("episodes")).sort(["cluster", "dataset"])
    by_emb = eps.group_by(["cluster", "embodiment"]).agg(pl.len().alias("episodes")).sort(["cluster", "embodiment"])
    tail_eps = int(sizes.filter(pl.col("tail"))["episodes"].sum())
    single_ds = int(sizes.filter(pl.col("datasets") == 1).height)
    summary = {
        "episodes": n, "k": k, "k_chosen_automatically": bool(scores),
        "silhouette_by_k": {str(kk): round(v, 4) for kk, v in scores.items()},
        "tail_threshold_episodes": round(threshold, 2), "tail_clusters": int(sizes["tail"].sum()),
        "tail_share": round(tail_eps / n, 4),
        "largest_cluster_share": round(float(sizes["share"].max()), 4),
        "clusters_covered_by_one_dataset": single_ds,
    }
    return Coverage(episodes=eps, clusters=sizes, by_dataset=by_ds, by_embodiment=by_emb, summary=summary,
                    centroids=res.centroids)


def coverage(lake: Lake, *, where: str | None = None, k: int | None = None, model_id: str | None = None,
             seed: int = 0) -> Coverage:
    """Clusters over the episode embeddings of a lake slice (see `coverage_of`)."""
    rows, vectors = load_vectors(lake, model_id=model_id, where=where, kind="episode")
    meta = lake.scan(where=where, columns=["episode_id", "dataset", "embodiment", "instruction"]).collect()
    meta = meta.with_columns(pl.col("embodiment").struct.field("robot").alias("embodiment"))
    ordered = rows.select("episode_id").join(meta, on="episode_id", how="left")
    return coverage_of(vectors, ordered, k=k, seed=seed)


def clusters(lake: Lake, *, where: str | None = None, k: int | None = None, model_id: str | None = None,
             seed: int = 0) -> pl.DataFrame:
    """episode_id -> cluster for a slice (what mixtures' `coverage` and `match` strategies group by)."""
    return coverage(lake, where=where, k=k, model_id=model_id, seed=seed).episodes.select(
        "episode_id", "dataset", "cluster")
