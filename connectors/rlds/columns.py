"""Step and frame columns of decoded RLDS episodes, built for a chunk of episodes at once.

The connector reduces each decoded record to `StepArrays` (numpy arrays and lists, no per-step objects); `build`
turns a whole chunk of them into one steps table and one frames table with a fixed number of Arrow calls, and
hands each episode its zero-copy slice (`schemas.columns.EpisodeColumns`). Building per episode would cost a few
dozen Arrow calls per episode, more than the Step objects it replaces for short episodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain

import numpy as np
import pyarrow as pa

from schemas.columns import FRAME_COLUMNS, STEP_COLUMNS, EpisodeColumns

FORMAT_NAMES = ("jpeg", "png")
_MAGIC = np.array([[0xFF, 0xD8, 0xFF, 0], [0x89, 0x50, 0x4E, 0x47]], np.uint8)
_MAGIC_LENGTH = (3, 4)


@dataclass
class StepArrays:
    """The per-step values of one episode, as the lake's columns need them.

    `actions`/`states` are [n, width] float32 (`states` None when the episode has none); `reward_valid` is None
    when every reward is present; `frames` lists the encoded images in (step, camera) order, `cameras` the camera
    names in camera order and `fallback` per camera the `FORMAT_NAMES` index used for an image without JPEG/PNG
    magic bytes (-1: none a frame can hold).
    """

    n: int
    hz: float
    actions: np.ndarray
    states: np.ndarray | None
    reward: np.ndarray
    reward_valid: np.ndarray | None
    is_first: np.ndarray
    is_last: np.ndarray
    is_terminal: np.ndarray
    language: list[str | None]
    discrete: list[str | None] | None
    args: list[str | None] | None
    frames: list[bytes]
    cameras: list[str]
    fallback: list[int]


def fallback_code(declared: str | None) -> int:
    """What the connector's `_image_format` falls back to for an image without magic bytes, as an index into
    `FORMAT_NAMES`; -1 when that is not a format a Frame accepts."""
    fallback = declared or "png"
    return FORMAT_NAMES.index(fallback) if fallback in FORMAT_NAMES else -1


def formats(data: pa.BinaryArray, fallback: np.ndarray) -> list[str]:
    """The `format` of each encoded image by its magic bytes, else its camera's `fallback` code: what
    `_image_format` says, for a whole column at once.

    Raises:
        ValueError: an image is neither JPEG nor PNG and its camera declares no format a Frame accepts.
    """
    if not len(data):
        return []
    offsets = np.frombuffer(data.buffers()[1], np.int32)[data.offset:data.offset + len(data) + 1]
    body = np.frombuffer(data.buffers()[2] or b"\0", np.uint8)
    lengths = np.diff(offsets)
    head = body[np.minimum(offsets[:-1, None] + np.arange(4), len(body) - 1)]  # first 4 bytes (clamped)
    codes = fallback.astype(np.int8)
    for code in (1, 0):
        width = _MAGIC_LENGTH[code]
        match = (lengths >= width) & np.all(head[:, :width] == _MAGIC[code, :width], axis=1)
        codes[match] = code
    if (codes < 0).any():
        raise ValueError("an image is neither JPEG nor PNG and its feature declares no encoding a frame can hold")
    return [FORMAT_NAMES[c] for c in codes.tolist()]


def _vectors(parts: list[np.ndarray | None], counts: list[int]) -> pa.Array:
    """[n_i, width_i] float32 arrays (None: a null vector per step) as one list<float32> column."""
    widths = [0 if p is None else (p.shape[1] if p.ndim == 2 else 0) for p in parts]
    lengths = np.repeat(np.asarray(widths, np.int32), counts)
    offsets = np.zeros(len(lengths) + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    present = [p.reshape(-1) for p in parts if p is not None]
    values = np.concatenate(present) if present else np.zeros(0, np.float32)
    nulls = [p is None for p in parts]
    mask = pa.array(np.repeat(np.asarray(nulls), counts)) if any(nulls) else None
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values.astype(np.float32, copy=False)), mask=mask)


def _texts(parts: list[list[str | None] | None], counts: list[int]) -> pa.Array:
    if all(p is None for p in parts):
        return pa.nulls(sum(counts), pa.string())
    return pa.array(list(chain.from_iterable(p if p is not None else [None] * n for p, n in zip(parts, counts,
                                                                                                   strict=True))),
                    pa.string())


def build(parts: list[StepArrays]) -> list[EpisodeColumns]:
    """The columns of each episode of a chunk: one steps and one frames table for the chunk, sliced per episode.

    Raises:
        ValueError: an image is neither JPEG nor PNG and its camera declares no format a frame can hold.
    """
    if not parts:
        return []
    counts = [p.n for p in parts]
    rewards_valid = [p.reward_valid if p.reward_valid is not None else np.ones(p.n, bool) for p in parts]
    reward_mask = ~np.concatenate(rewards_valid)
    steps = pa.Table.from_arrays([
        pa.array(np.concatenate([np.arange(n, dtype=np.int64) for n in counts])),
        pa.array(np.concatenate([np.arange(p.n) / p.hz for p in parts]), pa.float64()),
        _vectors([p.actions for p in parts], counts),
        _vectors([p.states for p in parts], counts),
        pa.array(np.concatenate([p.reward for p in parts]), pa.float64(),
                 mask=reward_mask if reward_mask.any() else None),
        pa.array(np.concatenate([p.is_first for p in parts])),
        pa.array(np.concatenate([p.is_last for p in parts])),
        pa.array(np.concatenate([p.is_terminal for p in parts])),
        _texts([p.language for p in parts], counts),
        _texts([p.discrete for p in parts], counts),
        _texts([p.args for p in parts], counts),
    ], schema=STEP_COLUMNS)
    data = pa.array(list(chain.from_iterable(p.frames for p in parts)), pa.binary())
    rows = len(data)
    fallback = np.concatenate([np.tile(np.asarray(p.fallback, np.int8), p.n) for p in parts])
    frames = pa.Table.from_arrays([
        pa.array(np.concatenate([np.repeat(np.arange(p.n, dtype=np.int64), len(p.cameras)) for p in parts])),
        pa.array(list(chain.from_iterable(p.cameras * p.n for p in parts)), pa.string()),
        pa.array(formats(data, fallback), pa.string()), data, pa.nulls(rows, pa.string()),
        pa.nulls(rows, pa.float64())], schema=FRAME_COLUMNS)
    out = []
    shared: dict = {}
    step_at = frame_at = 0
    for p in parts:
        m = len(p.frames)
        out.append(EpisodeColumns(steps.slice(step_at, p.n), frames.slice(frame_at, m),
                                  origin=(steps, frames, step_at, frame_at), shared=shared))
        step_at, frame_at = step_at + p.n, frame_at + m
    return out
