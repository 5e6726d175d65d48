"""Embedding pipeline throughput (read + decode + preprocess + forward + write) next to the bare forward pass.

    .venv/bin/python bench/bench_embed.py [--episodes 40] [--arch ViT-B-32] [--batch 32]

Uses random weights of the given architecture (same compute as the pretrained model; no download) on a demo lake.
Process start-up (imports, model load) is excluded from both sides. Printed:
* bare image forward: images/s of `encode_images` on a (batch, 3, H, W) tensor, median of >= 3 passes;
* pipeline images/s: images embedded / wall time of `embed_lake` (which also encodes the texts and writes rows);
* ratio images: pipeline images/s / bare image forward, the issue's figure (goal >= 0.9);
* ratio model-busy: (bare time of the same images + bare time of the texts the pipeline had to encode) / wall,
  i.e. how much of the wall time the model is computing.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time

import lancedb  # noqa: F401  (imported before timing: a one-off start-up cost of seconds)
import torch

from curate.demo import build_demo
from curate.embed import _episode_texts, embed_lake
from curate.lake import Lake
from curate.models import load_model


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=40)
    ap.add_argument("--arch", default="ViT-B-32")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        build_demo(f"{tmp}/lake", episodes=args.episodes, seed=1, via="schema")
        lake = Lake(f"{tmp}/lake")
        model = load_model(args.arch, None, allow_random=True, device="cpu")
        size = model.preprocess.transforms[0].size if hasattr(model.preprocess, "transforms") else 224
        side = size if isinstance(size, int) else size[0]
        x = torch.randn(args.batch, 3, side, side)
        model.encode_images(x)  # warm-up, as for the bare pass below
        started, c0 = time.perf_counter(), cpu_seconds()
        report = embed_lake(lake, model=model, batch=args.batch, workers=args.workers)
        wall, cpu = time.perf_counter() - started, cpu_seconds() - c0
        runs: list[float] = []
        while len(runs) < 3 or (sum(runs) < 2.0 and len(runs) < 200):  # fast models: enough runs for a median
            t0 = time.perf_counter()
            model.encode_images(x)
            runs.append(time.perf_counter() - t0)
        bare = args.batch / statistics.median(runs)
        rows = lake.scan(columns=["instruction", "instructions_alt", "segments"]).collect().to_dicts()
        unique = list(dict.fromkeys(t for r in rows for _, _, t in _episode_texts(r)))
        t0 = time.perf_counter()
        for i in range(0, len(unique), 64):
            model.encode_texts(unique[i:i + 64])
        text_s = time.perf_counter() - t0
        images_wall = report.images / wall
        busy = (report.images / bare + text_s) / wall
        print(f"arch={args.arch} batch={args.batch} episodes={report.episodes_embedded} images={report.images} "
              f"texts={report.texts} ({len(unique)} distinct) torch threads={torch.get_num_threads()}")
        print(f"bare image forward (median of {len(runs)} passes): {bare:.1f} images/s; "
              f"bare text forward of the distinct texts: {text_s:.2f} s")
        print(f"pipeline: {wall:.2f} s wall, {cpu:.1f} s CPU, {images_wall:.1f} images/s end to end "
              f"(image forward inside it: {report.images_per_s:.1f} images/s)")
        print(f"ratio images (pipeline images/s / bare image forward): {images_wall / bare:.2f}")
        print(f"ratio model-busy (bare images + texts time / wall):    {busy:.2f}")


if __name__ == "__main__":
    main()
