"""Numerics over embedding matrices, in numpy only: k-means, choosing k, PCA maps, k-nearest-neighbour distances.

Everything works in chunks so memory stays O(n * d + chunk * k): a million 512-d vectors need no n-by-n matrix.
Vectors are assumed L2-normalised (cosine similarity = dot product).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHUNK = 16_384


@dataclass
class KMeansResult:
    centroids: np.ndarray  # (k, d)
    labels: np.ndarray  # (n,) int32
    inertia: float


def _sqdist_chunk(x: np.ndarray, c: np.ndarray, c_sq: np.ndarray) -> np.ndarray:
    return np.maximum((x * x).sum(1, keepdims=True) - 2 * x @ c.T + c_sq[None, :], 0.0)


def assign(x: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(nearest centroid index, squared distance) for every row, chunk by chunk."""
    c_sq = (centroids * centroids).sum(1)
    labels = np.empty(len(x), dtype=np.int32)
    dist = np.empty(len(x), dtype=np.float32)
    for i in range(0, len(x), CHUNK):
        d = _sqdist_chunk(x[i:i + CHUNK], centroids, c_sq)
        labels[i:i + CHUNK] = d.argmin(1)
        dist[i:i + CHUNK] = d[np.arange(len(d)), labels[i:i + CHUNK]]
    return labels, dist


def _kmeanspp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-means++ (as scikit-learn): each step samples 2 + log(k) candidates, keeps the best."""
    trials = 2 + int(np.log(k))
    centroids = [x[rng.integers(len(x))]]
    closest = ((x - centroids[0]) ** 2).sum(1)
    for _ in range(1, k):
        total = closest.sum()
        cands = rng.integers(len(x), size=trials) if total <= 0 else rng.choice(len(x), size=trials, p=closest / total)
        best_pot, best_idx, best_closest = np.inf, int(cands[0]), closest
        for idx in cands:
            new_closest = np.minimum(closest, ((x - x[idx]) ** 2).sum(1))
            pot = float(new_closest.sum())
            if pot < best_pot:
                best_pot, best_idx, best_closest = pot, int(idx), new_closest
        centroids.append(x[best_idx])
        closest = best_closest
    return np.stack(centroids)


def kmeans(x: np.ndarray, k: int, *, seed: int = 0, iters: int = 30, sample: int = 100_000,
           n_init: int = 3) -> KMeansResult:
    """k-means (k-means++ init, Lloyd iterations) fitted on a sample of at most `sample` rows, then every row is
    assigned. The best of `n_init` starts (lowest inertia on the sample) wins."""
    x = np.asarray(x, dtype=np.float32)
    n = len(x)
    k = max(1, min(k, n))
    rng = np.random.default_rng(seed)
    fit = x if n <= sample else x[rng.choice(n, size=sample, replace=False)]
    best: tuple[float, np.ndarray] | None = None
    for _ in range(n_init):
        c = _kmeanspp(fit, k, rng)
        for _ in range(iters):
            labels, _ = assign(fit, c)
            counts = np.bincount(labels, minlength=k).astype(np.float32)
            new = np.stack([np.bincount(labels, weights=fit[:, j], minlength=k) for j in range(fit.shape[1])],
                           axis=1).astype(np.float32)
            empty = counts == 0
            new[~empty] /= counts[~empty, None]
            new[empty] = fit[rng.choice(len(fit), size=int(empty.sum()))]
            if np.allclose(new, c, atol=1e-6):
                c = new
                break
            c = new
        _, d = assign(fit, c)
        inertia = float(d.sum())
        if best is None or inertia < best[0]:
            best = (inertia, c)
    assert best is not None
    labels, d = assign(x, best[1])
    return KMeansResult(centroids=best[1], labels=labels, inertia=float(d.sum()))


def silhouette(x: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette coefficient (exact; call it on a sample of a few thousand rows)."""
    ks = np.unique(labels)
    if len(ks) < 2:
        return -1.0
    sq = (x * x).sum(1)
    d = np.sqrt(np.maximum(sq[:, None] - 2 * x @ x.T + sq[None, :], 0))
    a = np.zeros(len(x))
    b = np.full(len(x), np.inf)
    for k in ks:
        mask = labels == k
        mean_d = d[:, mask].sum(1) / np.maximum(mask.sum() - mask.astype(int), 1)
        a = np.where(mask, mean_d, a)
        b = np.where(mask, b, np.minimum(b, d[:, mask].mean(1)))
    s = (b - a) / np.maximum(np.maximum(a, b), 1e-12)
    single = np.array([np.sum(labels == lab) == 1 for lab in labels])
    s[single] = 0.0
    return float(s.mean())


def choose_k(x: np.ndarray, *, k_min: int = 2, k_max: int | None = None, seed: int = 0,
             sample: int = 3000) -> tuple[int, dict[int, float]]:
    """k with the best silhouette on a sample, over k_min..k_max (default up to ~sqrt(n/2), at most 40)."""
    n = len(x)
    if n < 3:
        return 1, {}
    k_max = k_max or int(min(24, max(k_min, np.sqrt(n / 2) + 1)))
    k_max = min(k_max, n - 1)
    rng = np.random.default_rng(seed)
    sub = x if n <= sample else x[rng.choice(n, size=sample, replace=False)]
    scores: dict[int, float] = {}
    for k in range(k_min, max(k_min, k_max) + 1):
        res = kmeans(sub, k, seed=seed, iters=15, n_init=1)
        scores[k] = silhouette(sub, res.labels)
    best = max(scores, key=lambda kk: (round(scores[kk], 3), -kk))
    return best, scores


def pca_2d(x: np.ndarray, *, sample: int = 50_000, seed: int = 0) -> np.ndarray:
    """Project every row onto the first two principal components (fitted on a sample)."""
    rng = np.random.default_rng(seed)
    fit = x if len(x) <= sample else x[rng.choice(len(x), size=sample, replace=False)]
    mean = fit.mean(0)
    _, _, vt = np.linalg.svd(fit - mean, full_matrices=False)
    return ((x - mean) @ vt[:2].T).astype(np.float32)


def knn_cosine_distance(query: np.ndarray, reference: np.ndarray, *, k: int = 5,
                        exclude_self: bool = False) -> np.ndarray:
    """(n_query, k) cosine distances to the k nearest reference rows, ascending; chunked over both sides."""
    k_eff = min(k, len(reference) - (1 if exclude_self else 0))
    if k_eff < 1:
        raise ValueError("the reference set is too small for a nearest-neighbour distance")
    out = np.empty((len(query), k_eff), dtype=np.float32)
    for i in range(0, len(query), 4096):
        q = query[i:i + 4096]
        best = np.full((len(q), k_eff), np.inf, dtype=np.float32)
        for j in range(0, len(reference), 65_536):
            d = 1.0 - q @ reference[j:j + 65_536].T
            if exclude_self:
                rows = np.arange(len(q))
                cols = rows + i - j
                ok = (cols >= 0) & (cols < d.shape[1])
                d[rows[ok], cols[ok]] = np.inf
            both = np.concatenate([best, d], axis=1)
            best = np.partition(both, k_eff - 1, axis=1)[:, :k_eff]
        out[i:i + 4096] = np.sort(best, axis=1)
    return out


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two sets (the FID formula), via symmetric eigendecompositions."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca = np.cov(a, rowvar=False) if len(a) > 1 else np.zeros((a.shape[1], a.shape[1]))
    cb = np.cov(b, rowvar=False) if len(b) > 1 else np.zeros((b.shape[1], b.shape[1]))
    w, v = np.linalg.eigh(ca)
    sqrt_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = sqrt_a @ cb @ sqrt_a
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * tr_sqrt)
