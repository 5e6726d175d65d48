"""Shift audit: how far a target set (e.g. deployment logs) lies from a reference set (the training data).

- novelty of a target episode: mean cosine distance to its k nearest reference episodes;
- covered: novelty at most the reference's own `coverage_quantile` of leave-one-out kNN distances (a target
  episode as close to the reference as reference episodes are to each other counts as covered);
- clusters fitted on both sets together: share of each in reference vs target, over-/under-represented;
- a Fréchet distance between Gaussians fitted to the two embedding sets (the FID formula on CLIP vectors).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from curate.analytics.vectors import choose_k, frechet_distance, kmeans, knn_cosine_distance
from curate.embed import load_vectors
from curate.lake import Lake


@dataclass
class ShiftAudit:
    """`target`: per target episode novelty and covered flag (most novel first); `clusters`: per cluster shares
    and representation ratio; `summary`: the headline numbers."""

    target: pl.DataFrame
    clusters: pl.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)


def shift_of(reference: np.ndarray, target: np.ndarray, *, target_ids: list[str] | None = None, k: int = 5,
             coverage_quantile: float = 0.95, n_clusters: int | None = None, over_ratio: float = 2.0,
             seed: int = 0) -> ShiftAudit:
    """The shift audit over two embedding matrices (rows L2-normalised)."""
    if len(reference) < 2 or len(target) < 1:
        raise ValueError(f"the shift audit needs at least 2 reference and 1 target episodes "
                         f"(got {len(reference)} and {len(target)})")
    ids = target_ids if target_ids is not None else [str(i) for i in range(len(target))]
    novelty = knn_cosine_distance(target, reference, k=k).mean(1)
    rng = np.random.default_rng(seed)
    ref_sample = reference if len(reference) <= 20_000 else reference[rng.choice(len(reference), 20_000, False)]
    ref_self = knn_cosine_distance(ref_sample, ref_sample, k=k, exclude_self=True).mean(1)
    threshold = float(np.quantile(ref_self, coverage_quantile))
    covered = novelty <= threshold
    both = np.concatenate([reference, target])
    if n_clusters is None:
        n_clusters, _ = choose_k(both, seed=seed)
    fit = kmeans(both, n_clusters, seed=seed)
    ref_lab, tgt_lab = fit.labels[: len(reference)], fit.labels[len(reference):]
    kk = fit.centroids.shape[0]
    ref_share = np.bincount(ref_lab, minlength=kk) / len(reference)
    tgt_share = np.bincount(tgt_lab, minlength=kk) / len(target)
    ratio = (tgt_share + 1e-9) / (ref_share + 1e-9)
    status = np.where(ratio >= over_ratio, "over", np.where(ratio <= 1 / over_ratio, "under", "matched"))
    status = np.where((ref_share == 0) & (tgt_share > 0), "target_only", status)
    clusters = pl.DataFrame({
        "cluster": np.arange(kk, dtype=np.int32), "reference_share": ref_share, "target_share": tgt_share,
        "target_over_reference": np.minimum(ratio, 1e9), "status": status,
        "reference_episodes": np.bincount(ref_lab, minlength=kk), "target_episodes": np.bincount(tgt_lab, minlength=kk),
    }).sort("target_over_reference", descending=True)
    table = pl.DataFrame({"episode_id": ids, "novelty": novelty.astype(np.float64), "covered": covered,
                          "cluster": tgt_lab.astype(np.int32)}).sort("novelty", descending=True)
    summary = {
        "reference_episodes": len(reference), "target_episodes": len(target), "k_neighbours": k,
        "coverage_threshold": round(threshold, 5), "coverage_quantile": coverage_quantile,
        "target_covered_share": round(float(covered.mean()), 4),
        "novelty_mean": round(float(novelty.mean()), 5), "novelty_median": round(float(np.median(novelty)), 5),
        "reference_self_distance_median": round(float(np.median(ref_self)), 5),
        "frechet_distance": round(frechet_distance(reference, target), 5),
        "clusters": kk, "over_represented": int((status == "over").sum() + (status == "target_only").sum()),
        "under_represented": int((status == "under").sum()),
    }
    return ShiftAudit(target=table, clusters=clusters, summary=summary)


def shift_audit(lake: Lake, *, reference: str | None, target: str, k: int = 5, model_id: str | None = None,
                coverage_quantile: float = 0.95, n_clusters: int | None = None, seed: int = 0) -> ShiftAudit:
    """The shift audit between two slices of one lake (filters), e.g. reference='split != "deploy"',
    target='dataset == "deploy_kitchen"'. Target rows gain instruction, dataset and the episode's middle keyframe
    (`keyframe_item`, e.g. "front@12") so a report can show the least-covered episodes."""
    ref_rows, ref_vec = load_vectors(lake, model_id=model_id, where=reference, kind="episode")
    tgt_rows, tgt_vec = load_vectors(lake, model_id=model_id, where=target, kind="episode")
    tgt_ids = tgt_rows["episode_id"].to_list()
    overlap = set(tgt_ids) & set(ref_rows["episode_id"].to_list())
    if overlap and len(overlap) == len(tgt_ids):
        raise ValueError("every target episode is also in the reference slice; give disjoint filters "
                         "(e.g. --reference 'dataset != \"deploy\"' --target 'dataset == \"deploy\"')")
    if overlap:
        keep = ~ref_rows["episode_id"].is_in(list(overlap)).to_numpy()
        ref_vec = ref_vec[keep]
    audit = shift_of(ref_vec, tgt_vec, target_ids=tgt_ids, k=k, coverage_quantile=coverage_quantile,
                     n_clusters=n_clusters, seed=seed)
    meta = lake.scan(where=target, columns=["episode_id", "instruction", "dataset"]).collect()
    from curate.embed import active_model, open_vectors

    mid = _middle_keyframes(open_vectors(lake, model_id or active_model(lake)["model_id"]), tgt_ids)
    audit.target = audit.target.join(meta, on="episode_id", how="left").join(mid, on="episode_id", how="left")
    audit.summary["reference_filter"] = reference
    audit.summary["target_filter"] = target
    return audit


def _middle_keyframes(table: Any, ids: list[str]) -> pl.DataFrame:
    """episode_id -> the middle keyframe (camera@step) of its first camera, from the vector rows."""
    rows = pl.from_arrow(table.to_lance().to_table(columns=["episode_id", "camera", "step", "item"],
                                                   filter="kind = 'image'"))
    assert isinstance(rows, pl.DataFrame)
    rows = rows.filter(pl.col("episode_id").is_in(ids))
    if rows.height == 0:
        return pl.DataFrame(schema={"episode_id": pl.String, "keyframe_item": pl.String})
    first_cam = rows.sort("item").group_by("episode_id").agg(pl.col("camera").first().alias("cam"))
    rows = rows.join(first_cam, on="episode_id").filter(pl.col("camera") == pl.col("cam")).sort(["episode_id", "step"])
    return rows.group_by("episode_id").agg(pl.col("item").get(pl.len() // 2).alias("keyframe_item"))
