"""Embedding pipeline throughput (images/s, read + decode + preprocess + forward) next to the bare forward pass.

    .venv/bin/python bench/bench_embed.py [--episodes 40] [--arch ViT-B-32] [--batch 32]

Uses random weights of the given architecture (same compute as the pretrained model; no download).
Goal: pipeline >= 90% of the bare forward pass at the same batch size.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from curate.demo import build_demo
from curate.embed import embed_lake
from curate.lake import Lake
from curate.models import load_model


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
        model.encode_images(torch.randn(args.batch, 3, side, side))  # warm-up, as for the bare pass below
        started = time.perf_counter()
        report = embed_lake(lake, model=model, batch=args.batch, workers=args.workers)
        wall = time.perf_counter() - started
        x = torch.randn(args.batch, 3, side, side)
        model.encode_images(x)  # warm-up
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            model.encode_images(x)
            runs.append(time.perf_counter() - t0)
        runs.sort()
        bare = args.batch / runs[1]
        images_wall = report.images / wall
        print(f"arch={args.arch} batch={args.batch} episodes={report.episodes_embedded} images={report.images} "
              f"texts={report.texts}")
        print(f"bare forward (median of 3): {bare:.1f} images/s")
        print(f"pipeline, image forward:    {report.images_per_s:.1f} images/s (batches as the pipeline forms them)")
        print(f"pipeline, end to end wall:  {images_wall:.1f} images/s (incl. text encoding, writes, model load 0)")
        print(f"ratio end-to-end / bare:    {images_wall / bare:.2f}")


if __name__ == "__main__":
    main()
