"""Duplicates: exact copies (same actions and frames) and near-duplicates (SemDeDup over episode embeddings).

Near-duplicates follow SemDeDup (Abbas et al. 2023): k-means into about n/`cluster_size` clusters, then within
each cluster every pair with cosine similarity above `threshold` is linked; each connected group keeps one
representative (the member closest to the cluster centroid, or the first by id with `keep="first"`). Work is
O(sum of squared cluster sizes), never an n-by-n matrix: one million vectors take minutes on two CPU cores.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import numpy as np
import polars as pl

from curate.analytics.vectors import assign, kmeans
from curate.embed import load_vectors
from curate.lake import Lake

DEFAULT_THRESHOLD = 0.98


def _components(m: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each of `m` nodes, the smallest node of its connected component under the edges (a[i], b[i]).

    Vectorised label propagation with pointer jumping: a label is always a node of the same component, and at the
    fixed point both ends of every edge carry the same label. A Python union-find over the pairs took hours on a
    1M-episode lake with many copies (tens of millions of pairs above the threshold).
    """
    labels = np.arange(m)
    while True:
        low = np.minimum(labels[a], labels[b])
        nxt = labels.copy()
        np.minimum.at(nxt, a, low)
        np.minimum.at(nxt, b, low)
        nxt = nxt[nxt]
        if np.array_equal(nxt, labels):
            return labels
        labels = nxt


def near_duplicates_of(vectors: np.ndarray, ids: list[str] | None = None, *, threshold: float = DEFAULT_THRESHOLD,
                       cluster_size: int = 1000, seed: int = 0, keep: Literal["central", "first"] = "central",
                       progress: Any = None) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Near-duplicate groups of `vectors` (L2-normalised rows).

    Returns:
        (table with episode_id, group, representative, is_duplicate, similarity-to-representative, for episodes
         in a group of 2+; summary numbers).
    """
    n = len(vectors)
    ids = ids if ids is not None else [str(i) for i in range(n)]
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    k = max(1, round(n / cluster_size))
    if k > 1:
        fit = kmeans(vectors, k, seed=seed, iters=10, sample=min(n, max(20 * k, 50_000)), n_init=1)
        labels, centroids = fit.labels, fit.centroids
    else:
        labels, centroids = np.zeros(n, dtype=np.int32), vectors.mean(0, keepdims=True)
    _, dist = assign(vectors, centroids)
    roots = np.arange(n)  # each episode's group: the lowest row of its connected component of near pairs
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    groups = np.split(order, bounds)
    for gi, members in enumerate(groups):
        if len(members) < 2:
            continue
        members = np.sort(members)
        sub = vectors[members]
        edges_a, edges_b = [], []
        for i in range(0, len(members), 4096):
            sims = sub[i:i + 4096] @ sub.T
            rows, cols = np.nonzero(sims >= threshold)
            upper = cols > rows + i  # each pair once
            edges_a.append(rows[upper] + i)
            edges_b.append(cols[upper])
        a, b = np.concatenate(edges_a), np.concatenate(edges_b)
        if len(a):
            roots[members] = members[_components(len(members), a, b)]
        if progress is not None and gi % 50 == 0:
            progress("near-duplicates", gi + 1, len(groups))
    counts = np.bincount(roots, minlength=n)
    in_group = np.flatnonzero(counts[roots] > 1)
    if len(in_group) == 0:
        table = pl.DataFrame(schema={"episode_id": pl.String, "group": pl.Int64, "representative": pl.String,
                                     "is_duplicate": pl.Boolean, "similarity": pl.Float32})
    else:
        frame = pl.DataFrame({"row": in_group, "root": roots[in_group], "dist": dist[in_group],
                              "episode_id": [ids[i] for i in in_group]})
        sort_key = ["root", "dist", "episode_id"] if keep == "central" else ["root", "episode_id"]
        frame = frame.sort(sort_key)
        reps = frame.group_by("root", maintain_order=True).agg(pl.col("row").first().alias("rep_row"),
                                                               pl.col("episode_id").first().alias("representative"))
        frame = frame.join(reps, on="root").with_columns(
            (pl.col("row") != pl.col("rep_row")).alias("is_duplicate"))
        sims = (vectors[frame["row"].to_numpy()] * vectors[frame["rep_row"].to_numpy()]).sum(1)
        group_ids = {r: g for g, r in enumerate(reps["root"].to_list())}
        table = frame.with_columns(pl.Series("similarity", sims.astype(np.float32)),
                                   pl.col("root").replace_strict(group_ids, return_dtype=pl.Int64).alias("group")
                                   ).select("episode_id", "group", "representative", "is_duplicate", "similarity")
    removable = int(table["is_duplicate"].sum()) if table.height else 0
    summary = {"episodes": n, "threshold": threshold, "clusters": k, "groups": int(table["group"].n_unique())
               if table.height else 0, "episodes_in_groups": table.height, "removable": removable,
               "removable_share": round(removable / n, 4) if n else 0.0}
    return table, summary


def near_duplicates(lake: Lake, *, where: str | None = None, threshold: float = DEFAULT_THRESHOLD,
                    model_id: str | None = None, keep: Literal["central", "first"] = "central",
                    progress: Any = None) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Near-duplicate episodes of a lake slice (see `near_duplicates_of`)."""
    rows, vectors = load_vectors(lake, model_id=model_id, where=where, kind="episode")
    return near_duplicates_of(vectors, rows["episode_id"].to_list(), threshold=threshold, keep=keep,
                              progress=progress)


def exact_duplicates(lake: Lake, *, where: str | None = None) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Episodes whose actions and frame bytes are byte-identical (content hash over steps in order).

    Streams the steps and frames tables once; memory holds one running hash per episode.
    """
    ids = lake.scan(where=where, columns=["episode_id"]).collect()["episode_id"].to_list()
    if not ids:
        raise ValueError(f"the slice {where!r} is empty: no episode matches")
    parts: dict[str, list[tuple[int, bytes]]] = {}
    for batch in lake.iter_steps(ids, columns=["episode_id", "index", "action"]):
        eps = batch.column("episode_id").to_pylist()
        idx = batch.column("index").to_pylist()
        acts = batch.column("action").to_pylist()
        for e, i, a in zip(eps, idx, acts, strict=True):
            parts.setdefault(e, []).append((i, np.asarray(a or [], dtype=np.float32).tobytes()))
    frame_parts: dict[str, list[tuple[int, str, bytes]]] = {}
    for batch in _iter_frame_digests(lake, ids):
        for e, i, c, d in batch:
            frame_parts.setdefault(e, []).append((i, c, d))
    digests = []
    for e in ids:
        h = hashlib.sha256()
        for _, b in sorted(parts.get(e, [])):
            h.update(b)
        for _, c, d in sorted(frame_parts.get(e, [])):
            h.update(c.encode() + d)
        digests.append(h.hexdigest())
    frame = pl.DataFrame({"episode_id": ids, "content_hash": digests})
    dup = (frame.with_columns(pl.len().over("content_hash").alias("copies")).filter(pl.col("copies") > 1)
           .sort(["content_hash", "episode_id"])
           .with_columns((pl.col("episode_id") != pl.col("episode_id").first().over("content_hash"))
                         .alias("is_duplicate")))
    summary = {"episodes": len(ids), "exact_groups": int(dup["content_hash"].n_unique()) if dup.height else 0,
               "exact_removable": int(dup["is_duplicate"].sum()) if dup.height else 0}
    return dup, summary


def _iter_frame_digests(lake: Lake, ids: list[str]) -> Any:
    """(episode_id, index, camera, sha1 of the frame bytes or video reference) of the current revisions."""
    from curate.lake import FRAMES

    revs = set(lake.scan(columns=["episode_id", "revision"], labels=False).collect()
               .filter(pl.col("episode_id").is_in(ids))["revision"].to_list())
    ds = lake.table(FRAMES)
    if ds is None:
        return
    for batch in ds.to_batches(columns=["episode_id", "revision", "index", "camera", "data", "video_uri",
                                        "video_timestamp_s"], batch_size=2048):
        out = []
        for r in batch.to_pylist():
            if r["revision"] not in revs:
                continue
            payload = r["data"] or f"{r['video_uri']}@{r['video_timestamp_s']}".encode()
            out.append((r["episode_id"], r["index"], r["camera"], hashlib.sha1(payload).digest()))
        yield out
