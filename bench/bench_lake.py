"""Lake benchmark: build a synthetic metadata lake and time filters on it.

    .venv/bin/python bench/bench_lake.py --episodes 1000000 --steps 10000000 --out /tmp/bench-lake

Prints write throughput (episodes/s, steps/s), then the median latency over repeated runs of
filter + count and filter + first page of 50 rows, next to the goals (300 ms / 500 ms at 1M episodes).
Rows are generated column-wise with NumPy and written through the lake's own Arrow schemas and commit
path (`Lake._append`), so the measured lake is exactly what ingest produces, minus frames.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from curate.lake import EPISODES, LAKE_EPISODES_SCHEMA, STEPS, Lake
from schemas import STEPS_SCHEMA

DATASETS = np.array(["bridge", "fractal", "kuka", "droid", "aloha_sim", "libero", "language_table", "alfred"])
ROBOTS = np.array(["widowx", "google_robot", "kuka_iiwa", "franka", "aloha", "franka", "xarm", "ai2thor"])
WORDS = np.array(["pick", "place", "put", "open", "close", "cup", "drawer", "sponge", "red", "blue", "block",
                  "bowl", "plate", "carrot", "pot", "sink", "lever", "towel", "into", "on", "the"])


def episode_chunk(start: int, n: int, steps_per_episode: int, rng: np.random.Generator) -> pa.Table:
    idx = np.arange(start, start + n)
    ds = rng.integers(0, len(DATASETS), n)
    n_steps = np.maximum(1, rng.poisson(steps_per_episode, n)).astype(np.int64)
    words = rng.integers(0, len(WORDS), (n, 5))
    instructions = [" ".join(WORDS[w]) for w in words]
    ids = [f"ep_{i:020d}" for i in idx]
    keys = [f"k{i}" for i in idx]
    names = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]
    tags = [["clutter"] if t else [] for t in rng.random(n) < 0.2]
    columns = {
        "episode_id": ids,
        "dataset": DATASETS[ds].tolist(),
        "source": [{"format": "rlds", "uri": "gs://bench", "key": k, "fingerprint": k} for k in keys],
        "embodiment": [{"robot": r, "kind": "arm", "is_sim": False} for r in ROBOTS[ds]],
        "action_space": [{"kind": "eef_delta", "dim": 7, "names": names}] * n,
        "state_space": [None] * n,
        "control_hz": np.full(n, 10.0),
        "instruction": instructions,
        "instructions_alt": [[]] * n,
        "segments": [[]] * n,
        "cameras": [[{"name": "image", "kind": "rgb", "height": 256, "width": 320, "missing": False}]] * n,
        "n_steps": n_steps,
        "duration_s": n_steps / 10.0,
        "success": (rng.random(n) < 0.9).tolist(),
        "scene": [None] * n,
        "task_type": [None] * n,
        "objects": [[]] * n,
        "split": ["train"] * n,
        "tags": tags,
        "notes": [None] * n,
        "quality_flags": [[]] * n,
        "metadata": ["{}"] * n,
        "schema_version": np.ones(n, dtype=np.int64),
        "ingested_at": pa.array(np.full(n, np.datetime64("2026-01-01T00:00:00", "us")), pa.timestamp("us", "UTC")),
        "revision": keys,
    }
    return pa.table(columns, schema=LAKE_EPISODES_SCHEMA)


def step_chunk(ep_table: pa.Table, budget: int) -> pa.Table:
    """Steps for the episodes of one chunk (at most `budget` rows), with 7-d float32 actions."""
    n_steps = ep_table.column("n_steps").to_numpy()
    cum = np.cumsum(n_steps)
    keep = int(np.searchsorted(cum, budget, side="right"))
    n_steps = n_steps[:keep]
    total = int(n_steps.sum())
    ep_index = np.repeat(np.arange(keep), n_steps)
    step_index = np.arange(total) - np.repeat(np.concatenate([[0], np.cumsum(n_steps)[:-1]]), n_steps)
    ids = ep_table.column("episode_id").take(pa.array(ep_index))
    revs = ep_table.column("revision").take(pa.array(ep_index))
    actions = np.random.default_rng(0).standard_normal((total, 7), dtype=np.float32)
    columns = {
        "episode_id": ids, "revision": revs, "index": step_index.astype(np.int64),
        "timestamp_s": step_index / 10.0,
        "action": pa.FixedSizeListArray.from_arrays(actions.ravel(), 7).cast(pa.list_(pa.float32())),
        "state": pa.nulls(total, pa.list_(pa.float32())),
        "reward": np.zeros(total), "is_first": step_index == 0, "is_last": np.zeros(total, dtype=bool),
        "is_terminal": np.zeros(total, dtype=bool), "language": pa.nulls(total, pa.string()),
        "discrete_action": pa.nulls(total, pa.string()), "action_args": pa.nulls(total, pa.string()),
    }
    return pa.table(columns, schema=STEPS_SCHEMA)


def timed(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=10_000_000)
    parser.add_argument("--chunk", type=int, default=100_000)
    parser.add_argument("--out", default="/tmp/curate-bench-lake")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="Reuse an existing lake at --out.")
    args = parser.parse_args()

    out = Path(args.out)
    if not args.keep or not out.exists():
        shutil.rmtree(out, ignore_errors=True)
        lake = Lake.create(out)
        rng = np.random.default_rng(42)
        steps_per_episode = max(1, args.steps // args.episodes)
        t0 = time.perf_counter()
        written_steps = 0
        for start in range(0, args.episodes, args.chunk):
            n = min(args.chunk, args.episodes - start)
            table = episode_chunk(start, n, steps_per_episode, rng)
            remaining = args.steps - written_steps
            if remaining > 0:
                steps = step_chunk(table, remaining)
                lake._append(STEPS, steps)
                written_steps += steps.num_rows
            lake._append(EPISODES, table)
            print(f"  wrote {start + n:>9,} episodes, {written_steps:>11,} steps", flush=True)
        elapsed = time.perf_counter() - t0
        print(f"write: {args.episodes:,} episodes + {written_steps:,} steps in {elapsed:.1f}s "
              f"= {args.episodes / elapsed:,.0f} episodes/s, {written_steps / elapsed:,.0f} steps/s")
        t0 = time.perf_counter()
        lake.optimize()
        print(f"optimize (compaction + episode_id index): {time.perf_counter() - t0:.1f}s")

    lake = Lake(out)
    results = {}
    queries = {
        "count dataset": 'dataset == "bridge"',
        "count dataset+n_steps+text": 'dataset == "bridge" and n_steps > 10 and instruction ~ "cup"',
        "count tag": '"clutter" in tags and success',
    }
    for label, where in queries.items():
        median, count = timed(lambda where=where: lake.count(where), args.repeat)
        results[f"filter+count [{label}]"] = {"median_ms": round(median * 1000, 1), "matches": count}
    for label, where in queries.items():
        median, (total, page) = timed(lambda where=where: lake.page(where, limit=50), args.repeat)
        results[f"filter+first page of 50 [{label}]"] = {"median_ms": round(median * 1000, 1), "total": total,
                                                         "rows": page.height}
    median, _ = timed(lambda: lake.episode(lake.page(limit=1)[1]["episode_id"][0], frames="none"), args.repeat)
    results["open one episode with steps"] = {"median_ms": round(median * 1000, 1)}
    print(f"lake: {out}  episodes={lake.count():,}")
    for name, r in results.items():
        goal = 300 if name.startswith("filter+count") else 500 if name.startswith("filter+first") else None
        verdict = "" if goal is None else f" (goal < {goal} ms: {'met' if r['median_ms'] < goal else 'MISSED'})"
        extra = json.dumps({k: v for k, v in r.items() if k != "median_ms"})
        print(f"{name:<60} {r['median_ms']:>8.1f} ms{verdict}  {extra}")


if __name__ == "__main__":
    main()
