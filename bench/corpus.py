"""Synthetic corpora of chosen size, written with the project's own writers, for the scale benchmarks.

    .venv/bin/python bench/corpus.py rlds --episodes 10000 --out /tmp/corpus-rlds      # RLDS TFRecord shards
    .venv/bin/python bench/corpus.py lerobot --episodes 2000 --out /tmp/corpus-lerobot # a LeRobot v2.1 dataset

RLDS episodes are generated one at a time (seeded; a small pool of real JPEG frames is reused so generation
costs little next to ingest) and streamed through `connectors.rlds.writer.write_episodes`, so memory stays flat at
any size. LeRobot datasets come from the demo world (`curate.demo.world.build_world`) through
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

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from schemas import (
    Camera,
    Embodiment,
    Episode,
    Frame,
    Source,
    Space,
    Step,
    episode_id_for,
    fingerprint_of,
)

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


def synthetic_episodes(n: int, *, seed: int = 0, steps: int = 20, image_size: int = 64,
                       dataset: str = "synth") -> Iterator[Episode]:
    """`n` valid episodes (one RGB camera with JPEG frames, 7-d actions, 3-d state), generated one at a time."""
    pool = _jpeg_pool(32, image_size, seed)
    for i in range(n):
        rng = random.Random(seed * 1_000_003 + i)
        n_steps = max(2, steps + rng.randint(-steps // 4, steps // 4))
        key = f"{dataset}/episode_{i}"
        instruction = " ".join(rng.choice(WORDS) for _ in range(5))
        step_list = [
            Step(index=t, timestamp_s=t / 10, action=[rng.uniform(-1, 1) for _ in range(7)],
                 state=[rng.uniform(-1, 1) for _ in range(3)], reward=float(t == n_steps - 1),
                 is_first=t == 0, is_last=t == n_steps - 1, is_terminal=t == n_steps - 1,
                 language=instruction, frames=[Frame(camera="image", format="jpeg", data=rng.choice(pool))])
            for t in range(n_steps)
        ]
        yield Episode(
            episode_id=episode_id_for(dataset, key), dataset=dataset,
            source=Source(format="rlds", uri=f"bench://{dataset}", key=key, fingerprint=fingerprint_of(key, str(seed))),
            embodiment=Embodiment(robot="widowx", kind="arm"),
            action_space=Space(kind="eef_delta", dim=7, names=["dx", "dy", "dz", "rx", "ry", "rz", "grip"]),
            state_space=Space(kind="eef_abs", dim=3, names=["x", "y", "z"]),
            control_hz=10.0, instruction=instruction, n_steps=n_steps, duration_s=n_steps / 10,
            cameras=[Camera(name="image", kind="rgb", height=image_size, width=image_size)],
            split="train", steps=step_list,
        )


def write_rlds(n: int, out: str | Path, *, seed: int = 0, steps: int = 20, episodes_per_shard: int = 100,
               image_size: int = 64) -> str:
    """An RLDS dataset of `n` episodes in shards of `episodes_per_shard` (one ingest unit per shard)."""
    from connectors.rlds.writer import write_episodes

    return write_episodes(synthetic_episodes(n, seed=seed, steps=steps, image_size=image_size),
                          str(Path(out) / "synth" / "1.0.0"), name="synth", episodes_per_shard=episodes_per_shard)


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
