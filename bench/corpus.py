"""Synthetic corpora of chosen size, written with the project's own writers, for the scale benchmarks.

    .venv/bin/python bench/corpus.py rlds --episodes 10000 --out /tmp/corpus-rlds      # RLDS TFRecord shards
    .venv/bin/python bench/corpus.py lerobot --episodes 2000 --out /tmp/corpus-lerobot # a LeRobot v2.1 dataset

RLDS episodes are bridge-shaped OXE records (the `bridge_dataset` layout of the OXE registry), generated one at a
time (seeded; a pool of real JPEG frames, each copy made byte-distinct by a JPEG comment, so generation costs
little next to ingest) and streamed through `connectors.rlds.writer.TFDSWriter`, so memory stays flat at any size.
LeRobot datasets come from the demo world (`curate.demo.world.build_world`) through
`curate.demo.write_lerobot.write` (v2.1, one parquet file per episode, JPEG frames), which holds the episodes in
memory: use it for thousands, RLDS for hundreds of thousands.
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


WORDS = ("pick", "place", "put", "open", "close", "the", "red", "blue", "cup", "drawer", "sponge", "bowl", "block")


def _jpeg_pool(n: int, size: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    pool = []
    for _ in range(n):
        img = Image.new("RGB", (size, size), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
        for _ in range(4):
            x, y = rng.randrange(size - 4), rng.randrange(size - 4)
            img.paste((rng.randrange(256), 0, 0), (x, y, x + 4, y + 4))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=85)
        pool.append(buf.getvalue())
    return pool


BRIDGE_FEATURES = {"steps": ("steps", {
    "observation": {"image_0": ("image", [0, 0, 3], "jpeg"), "state": ("tensor", "float32", [7])},
    "action": ("tensor", "float32", [7]), "language_instruction": ("text",), "reward": ("scalar", "float32"),
    "discount": ("scalar", "float32"), "is_first": ("scalar", "bool"), "is_last": ("scalar", "bool"),
    "is_terminal": ("scalar", "bool")}), "episode_metadata": {"file_path": ("text",)}}


def _distinct(jpeg: bytes, tag: int) -> bytes:
    """The same image with a JPEG comment segment (COM, 0xFFFE) naming `tag`: decodes identically, but no two frames
    share bytes, so the lake stores every frame as a real dataset would (no dictionary or dedup effect)."""
    comment = b"curate-bench %d" % tag
    return jpeg[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + jpeg[2:]


def bridge_examples(n: int, *, seed: int = 0, steps: int = 20, image_size: int = 64) -> Iterator[dict[str, Any]]:
    """`n` bridge-shaped RLDS examples ({leaf path: per-step values}), generated one at a time.

    One 64x64 JPEG camera (`image_0`, a pool of real encoded frames made distinct per step), 7-d state and action,
    a five-word instruction per episode, steps varying +-25% around `steps`. Seeded: the same arguments give the
    same bytes.
    """
    pool = _jpeg_pool(64, image_size, seed)
    tag = 0
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        n_steps = max(2, steps + int(rng.integers(-(steps // 4), steps // 4 + 1)))
        words = rng.integers(0, len(WORDS), 5)
        instruction = " ".join(WORDS[w] for w in words)
        frames = []
        for p in rng.integers(0, len(pool), n_steps):
            frames.append(_distinct(pool[p], tag))
            tag += 1
        last = np.arange(n_steps) == n_steps - 1
        yield {"steps/observation/image_0": frames,
               "steps/observation/state": rng.uniform(-1, 1, (n_steps, 7)),
               "steps/action": rng.uniform(-1, 1, (n_steps, 7)),
               "steps/language_instruction": [instruction] * n_steps,
               "steps/reward": last.astype(np.float32), "steps/discount": np.ones(n_steps),
               "steps/is_first": np.arange(n_steps) == 0, "steps/is_last": last, "steps/is_terminal": last,
               "episode_metadata/file_path": f"/bench/{seed}/episode_{i}"}


def write_rlds(n: int, out: str | Path, *, seed: int = 0, steps: int = 20, episodes_per_shard: int = 100,
               image_size: int = 64) -> str:
    """An OXE bridge-layout RLDS dataset of `n` episodes in shards of `episodes_per_shard` (one ingest unit per
    shard), written with the project's TFDS writer. The TFDS name is `bridge_dataset`, so ingest maps it through
    the OXE registry exactly as it would the real Bridge data."""
    from connectors.rlds.features import features_json
    from connectors.rlds.writer import TFDSWriter

    root = Path(out) / "bridge_dataset" / "1.0.0"
    with TFDSWriter(root, name="bridge_dataset", features=features_json(BRIDGE_FEATURES),
                    episodes_per_shard=episodes_per_shard) as writer:
        for example in bridge_examples(n, seed=seed, steps=steps, image_size=image_size):
            writer.add("train", example)
    return str(root)


def write_lerobot(n: int, out: str | Path, *, seed: int = 0) -> Path:
    """A LeRobot v2.1 dataset (JPEG frames in the parquet) of `n` demo-world episodes of one robot."""
    from curate.demo import write_lerobot as writer
    from curate.demo.world import build_world

    demos = build_world(max(4, n * 3), seed=seed)
    robot = demos[0].robot.name
    mine = [d for d in demos if d.robot.name == robot][:n]
    return writer.write(mine, Path(out), version="v2.1", visual="image")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=("rlds", "lerobot"))
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=20, help="mean steps per episode (RLDS)")
    parser.add_argument("--per-shard", type=int, default=100, help="episodes per RLDS shard (= per ingest unit)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    started = time.perf_counter()
    if args.kind == "rlds":
        path = write_rlds(args.episodes, args.out, seed=args.seed, steps=args.steps, episodes_per_shard=args.per_shard)
    else:
        path = str(write_lerobot(args.episodes, args.out, seed=args.seed))
    print(f"wrote {args.episodes} {args.kind} episodes to {path} in {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
