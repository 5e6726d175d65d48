"""Cheap quality flags computed at ingest from an Episode, the same for every connector.

Each flag is a short string stored in `Episode.quality_flags`; camera-specific flags name the camera
(`black_camera:image_3`). They are cheap on purpose: at most `SAMPLE_FRAMES` frames per camera are decoded,
and only at reduced size.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from itertools import chain

import numpy as np

from schemas import Episode
from schemas.columns import EpisodeColumns

EMPTY_INSTRUCTION = "empty_instruction"
PLACEHOLDER_INSTRUCTION = "placeholder_instruction"
NO_IS_LAST = "no_is_last"
BLACK_CAMERA = "black_camera"
ZERO_FIRST_ACTION = "zero_first_action"
IDLE_ACTIONS = "idle_actions"
NONFINITE_VALUES = "nonfinite_values"
FRAME_COUNT_MISMATCH = "frame_count_mismatch"
UNDECODABLE_FRAME = "undecodable_frame"
LANGUAGE_ONLY = "language_only"

FLAG_DESCRIPTIONS = {
    EMPTY_INSTRUCTION: "no instruction text",
    PLACEHOLDER_INSTRUCTION: "the instruction is a placeholder (e.g. 'n/a', 'todo', 'task')",
    NO_IS_LAST: "no step has is_last set: the episode may be truncated",
    BLACK_CAMERA: "every sampled frame of this camera is black (a placeholder camera)",
    ZERO_FIRST_ACTION: "the first action is all zeros",
    IDLE_ACTIONS: "a run of identical actions of at least IDLE_RUN steps (idle robot)",
    NONFINITE_VALUES: "NaN or infinite values in actions, states or rewards",
    FRAME_COUNT_MISMATCH: "a camera has a different number of frames than the episode has steps",
    UNDECODABLE_FRAME: "a sampled frame of this camera could not be decoded",
    LANGUAGE_ONLY: "the episode has language but no steps (e.g. an ALFRED test-split trial)",
}
PLACEHOLDERS = frozenset({"", "n/a", "na", "none", "null", "nil", "todo", "tbd", "task", "placeholder", "instruction",
                          "default", "unknown", "do something", "-", "?", "...", "test"})
IDLE_RUN = 20
"""A run of this many identical consecutive actions counts as idle."""
SAMPLE_FRAMES = 3
BLACK_LEVEL = 10
"""A frame whose brightest (downsampled) pixel is at most this is black (JPEG noise stays below it)."""


def _longest_constant_run(actions: np.ndarray) -> int:
    if len(actions) < 2:
        return len(actions)
    with np.errstate(invalid="ignore", over="ignore"):  # what np.isclose(rtol=0, atol=1e-7) computes, in one pass
        same = np.all((np.abs(actions[1:] - actions[:-1]) <= 1e-7) | (actions[1:] == actions[:-1]), axis=1)
    if not same.any():
        return 1
    edges = np.diff(np.concatenate(([0], same.view(np.int8), [0])))
    return int((np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).max()) + 1  # longest run of equal pairs


def _max_level(data: bytes) -> int | None:
    from PIL import Image

    formats = ("JPEG",) if data[:3] == b"\xff\xd8\xff" else ("PNG",) if data[:4] == b"\x89PNG" else None
    try:
        with Image.open(io.BytesIO(data), formats=formats) as img:
            if img.format == "JPEG":
                img.draft("L", (max(1, img.width // 8), max(1, img.height // 8)))
                if img.mode == "L":  # the common case: the brightest pixel without an array copy
                    img.load()
                    return int(img.getextrema()[1]) if img.width and img.height else 0
            arr = np.asarray(img)
    except Exception:  # any undecodable image is reported as a flag, not an error
        return None
    if arr.dtype != np.uint8:
        arr = (arr.astype(np.float64) / max(1.0, float(np.iinfo(arr.dtype).max if arr.dtype.kind in "ui" else 1))
               * 255)
    return int(arr.max()) if arr.size else 0


def quality_flags(episode: Episode) -> list[str]:
    """The quality flags of an episode (sorted, without duplicates), from its Step objects or its columns."""
    flags: set[str] = set()
    text = (episode.instruction or "").strip()
    if not text:
        flags.add(EMPTY_INSTRUCTION)
    elif text.lower().strip(".!") in PLACEHOLDERS:
        flags.add(PLACEHOLDER_INSTRUCTION)
    columns = episode.columns
    steps = episode.steps
    if episode.n_steps == 0 and not steps and (columns is None or columns.n_steps == 0):
        flags.add(LANGUAGE_ONLY)
        return sorted(flags)
    if columns is not None:
        _column_flags(episode, columns, flags)
    else:
        _step_flags(episode, flags)
    return sorted(flags)


def _step_flags(episode: Episode, flags: set[str]) -> None:
    """The step and camera flags of an episode carrying Step objects."""
    steps = episode.steps
    if steps and not any(s.is_last for s in steps):
        flags.add(NO_IS_LAST)
    widths = {len(s.action) for s in steps}
    if steps and len(widths) == 1 and widths != {0}:
        _action_flags(np.array([s.action for s in steps], dtype=np.float64), flags)
    values = chain(chain.from_iterable(s.action for s in steps),
                   chain.from_iterable(s.state for s in steps if s.state is not None),
                   (s.reward for s in steps if s.reward is not None))
    if not all(map(math.isfinite, values)):
        flags.add(NONFINITE_VALUES)
    by_camera: dict[str, list[bytes]] = {}
    counts: dict[str, int] = {}
    for step in steps:
        for frame in step.frames:
            counts[frame.camera] = counts.get(frame.camera, 0) + 1
            if frame.data is not None:
                by_camera.setdefault(frame.camera, []).append(frame.data)
    _camera_flags(episode, len(steps), counts, {name: frames.__getitem__ for name, frames in by_camera.items()},
                  {name: len(frames) for name, frames in by_camera.items()}, flags)


def _column_flags(episode: Episode, columns: EpisodeColumns, flags: set[str]) -> None:
    """The step and camera flags of an episode carrying columns: the same flags as `_step_flags`, computed on numpy
    views of the columns (shared by the episodes of one connector batch) without a Python object per step."""
    n = columns.n_steps
    if n and not columns.numpy("steps", "is_last")[0].any():
        flags.add(NO_IS_LAST)
    widths, actions = columns.lists("action")
    if n and widths.min() == widths.max() != 0:
        _action_flags(actions.astype(np.float64).reshape(n, int(widths[0])), flags)
    reward, present = columns.numpy("steps", "reward")
    if present is not None:
        reward = reward[present]
    if not (np.isfinite(actions).all() and np.isfinite(columns.lists("state")[1]).all()
            and np.isfinite(reward).all()):
        flags.add(NONFINITE_VALUES)
    codes, names = columns.codes("frames", "camera")
    data = columns.frames.column("data")
    data = data.chunk(0) if data.num_chunks == 1 else data.combine_chunks()
    has_bytes = None if data.null_count == 0 else data.is_valid().to_numpy(zero_copy_only=False)
    counts: dict[str, int] = {}
    readers: dict[str, Callable[[int], bytes]] = {}
    with_bytes: dict[str, int] = {}
    for code, count in enumerate(np.bincount(codes, minlength=len(names)).tolist()):
        if not count:
            continue
        name = names[code]
        counts[name] = count
        rows = np.flatnonzero(codes == code if has_bytes is None else (codes == code) & has_bytes)
        if rows.size:
            readers[name] = lambda i, rows=rows: data[int(rows[i])].as_py()
            with_bytes[name] = int(rows.size)
    _camera_flags(episode, n, counts, readers, with_bytes, flags)


def _action_flags(actions: np.ndarray, flags: set[str]) -> None:
    """Flags of a [steps, width] action array: non-finite values, an all-zero first action, idle runs."""
    finite = np.isfinite(actions)
    if not finite.all():
        flags.add(NONFINITE_VALUES)
    if finite[0].all() and not np.any(actions[0]):
        flags.add(ZERO_FIRST_ACTION)
    if _longest_constant_run(actions) >= IDLE_RUN:
        flags.add(IDLE_ACTIONS)


def _camera_flags(episode: Episode, n_steps: int, counts: dict[str, int],
                  frames: dict[str, Callable[[int], bytes]], sizes: dict[str, int], flags: set[str]) -> None:
    """Frame-count mismatches against the declared cameras, and black or undecodable cameras.

    Args:
        counts: frames per camera (with or without bytes).
        frames: per camera with bytes, a function giving its i-th frame that has bytes.
        sizes: per camera with bytes, how many of its frames have bytes.
    """
    for camera in episode.cameras:
        if not camera.missing and n_steps and counts.get(camera.name, 0) != n_steps:
            flags.add(FRAME_COUNT_MISMATCH)
    for name, frame in frames.items():
        size = sizes[name]
        picks = sorted({0, size // 2, size - 1})[:SAMPLE_FRAMES]
        black = True
        for i in picks:  # stop at the first frame that is not black: one decode for most cameras
            level = _max_level(frame(i))
            if level is None:
                flags.add(f"{UNDECODABLE_FRAME}:{name}")
                black = False
                break
            if level > BLACK_LEVEL:
                black = False
                break
        if black:
            flags.add(f"{BLACK_CAMERA}:{name}")
