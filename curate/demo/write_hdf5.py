"""Write demo episodes as ALOHA/ACT `episode_N.hdf5` files (JPEG-compressed images padded, with `compress_len`).

Layout as the ALOHA recorders write it (formats.md 3.2): `<root>/<task_name>/episode_<N>.hdf5`, attrs
`sim` and `compress`, `/observations/{qpos,qvel,effort}`, `/observations/images/<cam>` as (T, padded_len)
uint8, `/action`, `/compress_len` (n_cams, T). The task name (the directory) is derived from each episode's
target and receptacle, so the `aloha` connector recovers an instruction from it.

    from curate.demo.world import build_world
    from curate.demo import write_hdf5
    write_hdf5.write(build_world(20, seed=7), "/tmp/aloha_demo")
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from curate.demo.world import DemoEpisode, object_name

ImageMode = Literal["jpeg", "raw"]


def task_name(demo: DemoEpisode) -> str:
    """The task directory of a demo: `put_red_cube_in_bowl`."""
    return re.sub(r"[^a-z0-9]+", "_", f"put {object_name(demo.target)} in {demo.receptacle}".lower()).strip("_")


def write_episode(demo: DemoEpisode, path: Path, *, images: ImageMode = "jpeg", sim: bool = True) -> Path:
    """One demo as one ALOHA episode file at `path`."""
    import h5py
    from PIL import Image

    n = demo.n_steps
    cams = list(demo.robot.cameras)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as h5:
        h5.attrs["sim"] = sim
        h5.attrs["compress"] = images == "jpeg"
        obs = h5.create_group("observations")
        qpos = np.asarray(demo.states, dtype=np.float64)
        obs.create_dataset("qpos", data=qpos)
        obs.create_dataset("qvel", data=np.vstack([np.zeros((1, qpos.shape[1])), np.diff(qpos, axis=0)]))
        obs.create_dataset("effort", data=np.zeros_like(qpos))
        group = obs.create_group("images")
        if images == "jpeg":
            lengths = np.array([[len(b) for b in demo.frames[cam]] for cam in cams], dtype=np.int64)
            padded = int(lengths.max())
            for c, cam in enumerate(cams):
                buf = np.zeros((n, padded), dtype=np.uint8)
                for t, data in enumerate(demo.frames[cam]):
                    buf[t, : lengths[c, t]] = np.frombuffer(data, dtype=np.uint8)
                group.create_dataset(cam, data=buf, chunks=(1, padded))
            h5.create_dataset("compress_len", data=lengths)
        else:
            import io

            for cam in cams:
                pixels = np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in demo.frames[cam]])
                group.create_dataset(cam, data=pixels, chunks=(1, *pixels.shape[1:]))
        h5.create_dataset("action", data=np.asarray(demo.actions, dtype=np.float64))
    return path


def write(demo_episodes: Sequence[DemoEpisode], root: str | Path, *, images: ImageMode = "jpeg") -> Path:
    """Write every demo as `<root>/<task_name>/episode_<N>.hdf5` (N counts per task) and return `root`.

    Args:
        images: "jpeg" (compressed and zero-padded, with compress_len, like aloha2/mobile-aloha) or "raw"
            (uncompressed (T,H,W,3) uint8, like ACT's sim recorder).
    """
    if not demo_episodes:
        raise ValueError("no demo episodes to write")
    root = Path(root)
    counters: dict[str, int] = {}
    for demo in demo_episodes:
        task = task_name(demo)
        n = counters.get(task, 0)
        counters[task] = n + 1
        write_episode(demo, root / task / f"episode_{n}.hdf5", images=images)
    return root
