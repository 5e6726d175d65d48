"""Search latency and recall through `curate.search.search` (what `curate search` runs) over N 512-d vectors.

    .venv/bin/python bench/bench_search.py --n 1000000                       # build in a temp dir, query, clean up
    nice -n 19 .venv/bin/python bench/bench_search.py --n 10000000 --keep /data/s10m --build-only
    flock /tmp/bench.lock .venv/bin/python bench/bench_search.py --reuse /data/s10m

The data set is a real lake plus the vectors table `curate embed` writes, with its indexes built by the same
code (`curate.embed._maybe_index`): N keyframe vectors of N/4 episodes (2 cameras x 2 keyframes), 20 datasets.
Vectors are clustered like CLIP embeddings (N/1000 clusters, cosine to the centre ~0.7; queries ~0.5 to a
centre), written in batches so N=10M (20 GB) never sits in memory. Queries are vectors (`search(vector=...)`),
so the figures exclude the text encoder (reported separately by `bench_embed.py`).
Per prefilter kind (none, `dataset == "ds3"` = 5% of episodes, `episode_id in [1,000 ids]`) it prints p50/p95
latency and recall@10 of the returned episodes against exact search (each episode scored by its best keyframe).
Goal: p50 under 20 ms at 1M and 10M with recall@10 >= 0.9.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lance
import lancedb
import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curate.embed import REGISTRY, _maybe_index, table_name, vectors_schema
from curate.lake import EPISODES, LAKE_EPISODES_SCHEMA, Lake

MODEL_ID = "bench__random"
PER_EPISODE = 4
DATASETS = 20
CHUNK = 250_000


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def episode_ids(start: int, stop: int) -> list[str]:
    return [f"ep_{i:020d}" for i in range(start, stop)]


def template_row() -> pa.Table:
    """One real episode row (from the demo world), replicated with new ids for the bench lake."""
    from curate.demo import build_demo

    with tempfile.TemporaryDirectory() as tmp:
        build_demo(f"{tmp}/lake", episodes=1, seed=1, via="schema")
        return lance.dataset(f"{tmp}/lake/{EPISODES}.lance").to_table().slice(0, 1)


def clustered(rng: np.random.Generator, centers: np.ndarray, m: int, spread: float) -> np.ndarray:
    """m unit vectors, each a noisy copy of a random centre (cosine to it ~ 1/sqrt(1+spread^2))."""
    dim = centers.shape[1]
    v = centers[rng.integers(0, len(centers), m)] + rng.normal(scale=spread / np.sqrt(dim), size=(m, dim))
    v = v.astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


def build(out: Path, n: int, dim: int) -> None:
    rng = np.random.default_rng(0)
    n_eps = n // PER_EPISODE
    centers = rng.normal(size=(max(16, n // 1000), dim))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    np.save(out / "centers.npy", centers.astype(np.float32))
    lake = Lake.create(out / "lake")
    t0, c0 = time.perf_counter(), cpu_seconds()
    tpl = template_row()
    for start in range(0, n_eps, CHUNK):
        stop = min(n_eps, start + CHUNK)
        rows = tpl.take(pa.array(np.zeros(stop - start, dtype=np.int64)))
        ids = episode_ids(start, stop)
        rows = rows.set_column(rows.schema.get_field_index("episode_id"), "episode_id", pa.array(ids))
        rows = rows.set_column(rows.schema.get_field_index("dataset"), "dataset",
                               pa.array([f"ds{i % DATASETS}" for i in range(start, stop)]))
        lance.write_dataset(rows.cast(LAKE_EPISODES_SCHEMA), lake.table_uri(EPISODES),
                            mode="create" if start == 0 else "append", schema=LAKE_EPISODES_SCHEMA)
    lake.optimize()  # what a user runs after a large ingest: compaction + the episode_id index
    print(f"lake: {n_eps:,} episodes in {time.perf_counter() - t0:.1f} s", flush=True)
    schema = vectors_schema(dim)
    table = lancedb.connect(lake.uri).create_table(table_name(MODEL_ID), schema=schema)
    items = [("front", 0), ("wrist", 0), ("front", 30), ("wrist", 30)]
    for start in range(0, n, CHUNK):
        m = min(CHUNK, n - start)
        rows_i = np.arange(start, start + m)
        eps = rows_i // PER_EPISODE
        ids = [f"ep_{e:020d}" for e in eps]
        cams = [items[r % PER_EPISODE][0] for r in rows_i]
        steps = [items[r % PER_EPISODE][1] for r in rows_i]
        v = clustered(rng, centers, m, spread=1.0)
        cols = [pa.array(ids), pa.array(["k"] * m), pa.array([f"ds{e % DATASETS}" for e in eps]),
                pa.array(["image"] * m), pa.array([f"{c}@{s}" for c, s in zip(cams, steps, strict=True)]),
                pa.array(cams), pa.array(steps, type=pa.int32()), pa.nulls(m, type=pa.string()),
                pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), dim)]
        table.add(pa.Table.from_arrays(cols, schema=schema))
        if (start // CHUNK) % 8 == 0:
            print(f"  vectors {start + m:,}/{n:,} ({time.perf_counter() - t0:.0f} s)", flush=True)
    lake.write_json(REGISTRY, {"active": MODEL_ID, "models": {MODEL_ID: {"arch": "bench", "pretrained": None,
                                                                         "dim": dim}}})
    print(f"wrote {n:,} vectors in {time.perf_counter() - t0:.1f} s wall, {cpu_seconds() - c0:.0f} s CPU",
          flush=True)
    t0, c0 = time.perf_counter(), cpu_seconds()
    _maybe_index(table, min_rows=0)
    build_s, build_cpu = time.perf_counter() - t0, cpu_seconds() - c0
    print(f"IVF-SQ + scalar indexes built in {build_s:.1f} s wall, {build_cpu:.0f} s CPU", flush=True)
    (out / "build.json").write_text(json.dumps({"n": n, "dim": dim, "index_s": build_s, "index_cpu_s": build_cpu}))


def queries(out: Path, count: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    centers = np.load(out / "centers.npy")
    return clustered(rng, centers, count, spread=1.7)


def filters(n_eps: int) -> dict[str, str | list[str] | None]:
    """The prefilter kinds: none, a 5% `where` filter, and 1,000 random episode ids (`episode_ids=`)."""
    rng = np.random.default_rng(2)
    picked = sorted(int(i) for i in rng.choice(n_eps, 1000, replace=False))
    return {"none": None, "dataset 5%": 'dataset == "ds3"', "1,000 ids": [f"ep_{i:020d}" for i in picked]}


def search_args(prefilter: str | list[str] | None) -> dict[str, object]:
    return {"episode_ids": prefilter} if isinstance(prefilter, list) else {"where": prefilter}


def exact_top(out: Path, q: np.ndarray, kinds: dict[str, str | list[str] | None], k: int) -> dict[str, list[list[str]]]:
    """Exact top-k episodes per query and filter, streaming the whole table (cached in the bench dir)."""
    cache = out / f"truth_{len(q)}_{k}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    t0 = time.perf_counter()
    lake = Lake(out / "lake")
    allowed = {label: None if where is None else set(where) if isinstance(where, list) else
               set(lake.scan(where=where, columns=["episode_id"]).collect()["episode_id"].to_list())
               for label, where in kinds.items()}
    keep = 64  # rows per query and filter kept per batch: >= k episodes even with 4 rows per episode
    best: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {label: [] for label in kinds}
    ds = lance.dataset(f"{lake.uri}/{table_name(MODEL_ID)}.lance")
    for batch in ds.to_batches(columns=["episode_id", "vector"], batch_size=100_000):
        ids = np.asarray(batch.column("episode_id").to_pylist(), dtype=object)
        vec = batch.column("vector").values.to_numpy(zero_copy_only=False).reshape(len(ids), -1)
        scores = q @ vec.T
        for label, ok in allowed.items():
            s = scores if ok is None else scores[:, np.fromiter((i in ok for i in ids), bool, len(ids))]
            sub = ids if ok is None else ids[np.fromiter((i in ok for i in ids), bool, len(ids))]
            if sub.size == 0:
                continue
            top = np.argsort(-s, axis=1)[:, :keep]
            best[label].append((np.take_along_axis(s, top, axis=1), sub[top]))
    truth: dict[str, list[list[str]]] = {}
    for label, parts in best.items():
        s = np.concatenate([p[0] for p in parts], axis=1)
        ids = np.concatenate([p[1] for p in parts], axis=1)
        rows = []
        for qi in range(len(q)):
            seen: list[str] = []
            for j in np.argsort(-s[qi]):
                if ids[qi, j] not in seen:
                    seen.append(ids[qi, j])
                if len(seen) == k:
                    break
            rows.append(seen)
        truth[label] = rows
    cache.write_text(json.dumps(truth))
    print(f"exact search for recall: {time.perf_counter() - t0:.1f} s", flush=True)
    return truth


def run_queries(out: Path, count: int, k: int, only: str | None = None, cold: bool = False) -> None:
    from curate.search import search, warm

    info = json.loads((out / "build.json").read_text())
    lake = Lake(out / "lake")
    q = queries(out, count)
    kinds = filters(info["n"] // PER_EPISODE)
    truth = exact_top(out, q, kinds, k)
    print(f"n={info['n']:,} vectors ({info['n'] // PER_EPISODE:,} episodes), dim {info['dim']}, index built in "
          f"{info['index_s']:.0f} s wall / {info['index_cpu_s']:.0f} s CPU; {count} queries, k={k}", flush=True)
    import curate.search

    facts = curate.search.table_facts(curate.search._vectors(lake, MODEL_ID))
    print(f"index {facts.index_type} ({facts.coverage} coverage), NPROBES {curate.search.NPROBES}, REFINE_FACTOR "
          f"{curate.search.REFINE_FACTOR}, EXACT_MAX_EPISODES {curate.search.EXACT_MAX_EPISODES}", flush=True)
    if not cold:  # what the UI does once per vector-table version
        t0 = time.perf_counter()
        warm(lake)
        print(f"vector index loaded into memory (curate.search.warm) in {time.perf_counter() - t0:.1f} s, "
              f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB", flush=True)
    for label, where in kinds.items():
        if only and label != only:
            continue
        first = time.perf_counter()
        search(lake, vector=q[0], k=k, **search_args(where))  # type: ignore[arg-type]
        cold = (time.perf_counter() - first) * 1000
        times, recalls = [], []
        c0 = cpu_seconds()
        for qi, vec in enumerate(q):
            t = time.perf_counter()
            res = search(lake, vector=vec, k=k, **search_args(where))  # type: ignore[arg-type]
            times.append((time.perf_counter() - t) * 1000)
            recalls.append(len(set(res["episode_id"].to_list()) & set(truth[label][qi])) / k)
        cpu_ms = (cpu_seconds() - c0) * 1000 / len(q)
        print(f"prefilter {label:11s}: p50 {statistics.median(times):6.1f} ms  p95 "
              f"{float(np.percentile(times, 95)):6.1f} ms  (first query {cold:.0f} ms, {cpu_ms:.1f} CPU ms/query)  "
              f"recall@{k} {statistics.mean(recalls):.3f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--keep", type=Path, help="build into this directory and keep it")
    ap.add_argument("--reuse", type=Path, help="query a directory built earlier with --keep")
    ap.add_argument("--build-only", action="store_true")
    ap.add_argument("--nprobes", type=int, help="override curate.search.NPROBES (tuning)")
    ap.add_argument("--refine", type=int, help="override curate.search.REFINE_FACTOR (tuning)")
    ap.add_argument("--only", help="run one prefilter kind only (none, 'dataset 5%%', '1,000 ids')")
    ap.add_argument("--cold", action="store_true", help="do not load the index into memory before the queries")
    args = ap.parse_args()
    import curate.search

    if args.nprobes is not None:
        curate.search.NPROBES = args.nprobes
    if args.refine is not None:
        curate.search.REFINE_FACTOR = args.refine
    if args.reuse:
        run_queries(args.reuse, args.queries, args.k, args.only, args.cold)
        return
    out = args.keep or Path(tempfile.mkdtemp(prefix="bench-search-"))
    out.mkdir(parents=True, exist_ok=True)
    try:
        build(out, args.n, args.dim)
        if not args.build_only:
            run_queries(out, args.queries, args.k, args.only, args.cold)
    finally:
        if args.keep is None:
            shutil.rmtree(out, ignore_errors=True)



if __name__ == "__main__":
    main()
