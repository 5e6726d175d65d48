"""Search p50 latency with a metadata prefilter over N 512-d vectors in a LanceDB table (IVF-PQ index).

    .venv/bin/python bench/bench_search.py [--n 1000000] [--queries 50]

Goal: p50 under 20 ms at 1M and 10M vectors. The table has the layout `curate embed` writes.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import lancedb
import numpy as np
import pyarrow as pa

from curate.embed import _maybe_index, vectors_schema


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=50)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    schema = vectors_schema(args.dim)
    with tempfile.TemporaryDirectory() as tmp:
        db = lancedb.connect(tmp)
        table = db.create_table("vectors_bench", schema=schema)
        t0 = time.perf_counter()
        chunk = 200_000
        for start in range(0, args.n, chunk):
            m = min(chunk, args.n - start)
            v = rng.normal(size=(m, args.dim)).astype(np.float32)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            ids = [f"ep_{i:012d}" for i in range(start, start + m)]
            cols = [pa.array(ids), pa.array(["k"] * m), pa.array([f"ds{i % 20}" for i in range(start, start + m)]),
                    pa.array(["image"] * m), pa.array(["front@0"] * m), pa.array(["front"] * m),
                    pa.array([0] * m, type=pa.int32()), pa.array([None] * m, type=pa.string()),
                    pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), args.dim)]
            table.add(pa.Table.from_arrays(cols, schema=schema))
        print(f"wrote {args.n:,} vectors in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        _maybe_index(table, min_rows=0)
        table.create_scalar_index("dataset", index_type="BITMAP", replace=True)
        print(f"IVF-PQ + scalar indexes built in {time.perf_counter() - t0:.1f} s")
        q = rng.normal(size=(args.queries, args.dim)).astype(np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        some_ids = ", ".join(f"'ep_{i:012d}'" for i in rng.choice(args.n, 1000, replace=False))
        for label, clause in (("none", "kind = 'image'"), ("dataset == ds3 (5%)", "kind = 'image' AND dataset = 'ds3'"),
                              ("1000 episode ids", f"kind = 'image' AND episode_id IN ({some_ids})")):
            times = []
            for vec in q:
                t = time.perf_counter()
                (table.search(vec).distance_type("cosine").where(clause, prefilter=True).nprobes(20)
                 .select(["episode_id", "_distance"]).limit(80).to_arrow())
                times.append((time.perf_counter() - t) * 1000)
            print(f"prefilter {label:22s}: p50 {statistics.median(times):.1f} ms, "
                  f"p90 {sorted(times)[int(0.9 * len(times))]:.1f} ms over {len(times)} queries")


if __name__ == "__main__":
    main()
