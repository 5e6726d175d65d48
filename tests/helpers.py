"""Test helpers: seeded episode factory, JPEG bytes, the real-data directory, and running the real CLI."""

from __future__ import annotations

import io
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from schemas import (
    Camera,
    Embodiment,
    Episode,
    Frame,
    Segment,
    Source,
    Space,
    Step,
    episode_id_for,
    fingerprint_of,
)

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("CURATE_REAL_DATA", REPO.parent / "shared" / "real"))


def real_data(*parts: str) -> Path:
    """Path inside ../shared/real; skips the test with a clear reason when the sample is absent."""
    path = REAL_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real sample data not present at {path} (set CURATE_REAL_DATA or place ../shared/real)")
    return path


def jpeg_bytes(colour: tuple[int, int, int], size: int = 16) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def make_episode(i: int = 0, *, dataset: str = "ds", n_steps: int = 4, cameras: tuple[str, ...] = ("front",),
                 instruction: str | None = "pick up the cup", seed: int = 0, **overrides: object) -> Episode:
    """A small, valid, seeded episode with JPEG frames; `overrides` replace episode fields."""
    rng = random.Random(seed * 1000 + i)
    key = f"{dataset}/ep{i}"
    steps = [
        Step(index=t, timestamp_s=t / 10, action=[rng.uniform(-1, 1) for _ in range(3)],
             state=[rng.uniform(-1, 1) for _ in range(2)], reward=0.0, is_first=t == 0, is_last=t == n_steps - 1,
             frames=[Frame(camera=c, format="jpeg", data=jpeg_bytes((rng.randrange(256), 40, 90))) for c in cameras])
        for t in range(n_steps)
    ]
    fields: dict[str, object] = dict(
        episode_id=episode_id_for(dataset, key), dataset=dataset,
        source=Source(format="test", uri=f"/data/{dataset}", key=key, fingerprint=fingerprint_of(key, str(seed))),
        embodiment=Embodiment(robot="franka", kind="arm"),
        action_space=Space(kind="eef_delta", dim=3, names=["dx", "dy", "dz"]),
        state_space=Space(kind="eef_abs", dim=2, names=["x", "y"]),
        control_hz=10.0, instruction=instruction, n_steps=n_steps, duration_s=n_steps / 10,
        cameras=[Camera(name=c, height=16, width=16) for c in cameras],
        segments=[Segment(start=0, end=min(2, n_steps), text="reach")], metadata={"i": i}, steps=steps,
    )
    fields.update(overrides)
    return Episode.model_validate(fields)


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real `curate` entry point in a subprocess (as a user would)."""
    return subprocess.run([sys.executable, "-m", "curate", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=600)
