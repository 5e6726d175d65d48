"""RLDS ingest throughput next to its floor: reading and CRC-checking the same shard bytes in the same process.

    .venv/bin/python bench/bench_rlds_ingest.py                       # default size
    .venv/bin/python bench/bench_rlds_ingest.py --episodes 400 --steps 60 --workers 1 2 4
    .venv/bin/python bench/bench_rlds_ingest.py --source /path/to/tfds/dir   # an existing RLDS dataset

Prints, per stage, wall seconds and CPU seconds (this process and its waited-for children, all threads), steps/s
and MB/s (shard bytes, per wall second and per CPU second): the floor (read + CRC only); the ceiling (read + CRC,
then write the same step columns and frame bytes into fresh Lance datasets, no decoding: what any ingest that keeps
every byte must at least do); decode + convert without writing (connector only); and full ingest into a fresh lake
with 1..N workers, for each episode layout (Arrow columns, the default, and Step objects, the reference path); the
ratios to the floor and to the ceiling (wall and CPU, measured in the same run); and the peak RSS. Goal:
single-process ingest at >= 50% of the floor, near-linear with --workers up to the core count. Medians of --repeat
runs (default 3). On a shared machine the CPU figures are the steadier ones. With workers > 1 the CPU column covers
the committing parent only (the workers are children of the fork server, not of this process).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lance
import numpy as np
import pyarrow as pa

from connectors.base import BadEpisode, SourceOptions, StepLayout
from connectors.rlds import RLDSConnector
from connectors.rlds.features import features_json
from connectors.rlds.writer import TFDSWriter
from connectors.tfrecord import read_records
from curate.ingest import ingest
from curate.lake import FRAMES, STEPS, TABLE_FILE_FORMATS, episode_tables
from schemas import FRAMES_SCHEMA, STEPS_SCHEMA


def _jpeg_pool(n: int, size: int, seed: int) -> list[bytes]:
    import io

    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        arr = (rng.random((size, size, 3)) * 60 + rng.integers(0, 190)).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=85)
        out.append(buf.getvalue())
    return out


def make_dataset(root: Path, *, episodes: int, steps: int, image: int, per_shard: int, seed: int = 0) -> Path:
    """A bridge-shaped RLDS dataset (2 cameras, 7-dim state/action, text instruction) written by our writer."""
    features = features_json({"steps": ("steps", {
        "observation": {"image_0": ("image", [image, image, 3], "jpeg"),
                        "image_1": ("image", [image, image, 3], "jpeg"), "state": ("tensor", "float32", [7])},
        "action": ("tensor", "float32", [7]), "language_instruction": ("text",), "reward": ("scalar", "float32"),
        "discount": ("scalar", "float32"), "is_first": ("scalar", "bool"), "is_last": ("scalar", "bool"),
        "is_terminal": ("scalar", "bool")}), "episode_metadata": {"file_path": ("text",)}})
    pool = _jpeg_pool(32, image, seed)
    rng = np.random.default_rng(seed)
    out = root / "bridge_dataset" / "1.0.0"
    with TFDSWriter(out, name="bridge_dataset", features=features, episodes_per_shard=per_shard) as writer:
        for e in range(episodes):
            idx = rng.integers(0, len(pool), size=(2, steps))
            writer.add("train", {
                "steps/observation/image_0": [pool[i] for i in idx[0]],
                "steps/observation/image_1": [pool[i] for i in idx[1]],
                "steps/observation/state": rng.normal(size=(steps, 7)), "steps/action": rng.normal(size=(steps, 7)),
                "steps/language_instruction": [f"task {e % 17}"] * steps, "steps/reward": np.zeros(steps),
                "steps/discount": np.ones(steps), "steps/is_first": np.arange(steps) == 0,
                "steps/is_last": np.arange(steps) == steps - 1, "steps/is_terminal": np.arange(steps) == steps - 1,
                "episode_metadata/file_path": f"/data/{e}"})
    return out


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU) seconds of one call; CPU counts every thread of this process and the children it waited for."""
    def cpu() -> float:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + children.ru_utime + children.ru_stime

    wall, started = time.perf_counter(), cpu()
    fn()
    return time.perf_counter() - wall, cpu() - started


def median_timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    runs = [timed(fn) for _ in range(repeat)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def floor(dataset: Path) -> tuple[float, int, int]:
    """Seconds to read + CRC-check every shard, bytes read, records."""
    start = time.perf_counter()
    nbytes = records = 0
    for shard in sorted(dataset.glob("*.tfrecord-*")):
        with shard.open("rb") as fh:
            for record in read_records(fh):
                nbytes += 16 + len(record.data or b"")
                records += 1
    return time.perf_counter() - start, nbytes, records


def decode_only(dataset: Path, layout: StepLayout = "columns") -> tuple[float, int]:
    """Seconds for the connector to decode and convert every episode (no lake), and the steps produced."""
    connector = RLDSConnector()
    options = SourceOptions(layout=layout)
    start = time.perf_counter()
    steps = 0
    for unit in connector.list_units(str(dataset), options):
        for ep in connector.episodes(unit, options):
            if not isinstance(ep, BadEpisode):
                steps += ep.n_steps
    return time.perf_counter() - start, steps


def lake_tables(dataset: Path) -> tuple[pa.Table, pa.Table]:
    """The steps and frames rows an ingest of `dataset` writes (computed once, outside any timing)."""
    connector = RLDSConnector()
    options = SourceOptions(layout="columns")
    episodes = [ep for unit in connector.list_units(str(dataset), options)
                for ep in connector.episodes(unit, options) if not isinstance(ep, BadEpisode)]
    _, steps, frames = episode_tables(episodes)
    return steps, frames


def ceiling(dataset: Path, steps: pa.Table, frames: pa.Table) -> None:
    """Read + CRC-check every shard, then write the same step columns and frame bytes into fresh Lance datasets:
    the physical minimum of an ingest that keeps every byte, with no decoding, conversion or checks."""
    out = Path(tempfile.mkdtemp(prefix="bench-ceiling-"))
    try:
        floor(dataset)
        for name, table, schema in ((STEPS, steps, STEPS_SCHEMA), (FRAMES, frames, FRAMES_SCHEMA)):
            lance.write_dataset(table, str(out / f"{name}.lance"), schema=schema,  # the lake's file formats
                                data_storage_version=TABLE_FILE_FORMATS.get(name))
    finally:
        shutil.rmtree(out, ignore_errors=True)


def full_ingest(dataset: Path, workers: int, layout: StepLayout = "columns") -> tuple[float, int]:
    lake = Path(tempfile.mkdtemp(prefix="bench-lake-"))
    try:
        start = time.perf_counter()
        report = ingest([str(dataset)], lake=str(lake / "lake"), workers=workers, layout=layout)
        return time.perf_counter() - start, report.steps
    finally:
        shutil.rmtree(lake, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=120)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--image", type=int, default=64, help="image side in pixels")
    parser.add_argument("--per-shard", type=int, default=20)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--layouts", nargs="+", choices=["columns", "objects"], default=["columns", "objects"],
                        help="episode layouts to ingest with: Arrow columns (the default path) and Step objects")
    parser.add_argument("--source", type=Path, help="benchmark an existing TFDS dataset directory instead")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-rlds-"))
    try:
        dataset = args.source or make_dataset(tmp, episodes=args.episodes, steps=args.steps, image=args.image,
                                              per_shard=args.per_shard)
        floor_s, floor_cpu = median_timed(lambda: floor(dataset), max(args.repeat, 5))
        _, nbytes, records = floor(dataset)
        mb = nbytes / 1e6
        _, steps = decode_only(dataset)
        step_rows, frame_rows = lake_tables(dataset)
        ceil_s, ceil_cpu = median_timed(lambda: ceiling(dataset, step_rows, frame_rows), args.repeat)
        print(f"dataset: {dataset}  {records} episodes, {steps} steps, {mb:.1f} MB in shards, "
              f"{os.cpu_count()} cores, medians of {args.repeat} runs")
        print(f"{'stage':<40}{'wall s':>8}{'CPU s':>8}{'steps/s':>10}{'MB/s':>8}{'steps/CPU-s':>13}{'MB/CPU-s':>10}"
              f"{'vs floor':>10}{'(CPU)':>7}{'vs ceiling':>12}{'(CPU)':>7}")

        def row(name: str, seconds: float, cpu: float) -> None:
            print(f"{name:<40}{seconds:>8.3f}{cpu:>8.3f}{steps / seconds:>10.0f}{mb / seconds:>8.1f}"
                  f"{steps / cpu:>13.0f}{mb / cpu:>10.1f}{floor_s / seconds:>10.1%}{floor_cpu / cpu:>7.1%}"
                  f"{ceil_s / seconds:>12.1%}{ceil_cpu / cpu:>7.1%}")

        row("floor: read + CRC only", floor_s, floor_cpu)
        row("ceiling: read + CRC + Lance write", ceil_s, ceil_cpu)
        for layout in args.layouts:
            row(f"decode + convert (no lake), {layout}", *median_timed(lambda la=layout: decode_only(dataset, la),
                                                                      args.repeat))
        full_ingest(dataset, 1)  # warm-up: first Lance write, connector imports (not measured)
        for layout in args.layouts:
            for workers in args.workers:
                name = f"ingest, {layout}, workers={workers}" + ("*" if workers > 1 else "")
                row(name, *median_timed(lambda w=workers, la=layout: full_ingest(dataset, w, la), args.repeat))
        if any(w > 1 for w in args.workers):
            print("* CPU of the committing parent only (workers are children of the fork server)")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"peak RSS: this process {peak:.0f} MB, largest waited-for child {peak_children:.0f} MB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
