"""ALOHA / ACT / Mobile ALOHA `episode_N.hdf5` (one episode per file) -> `schemas.Episode`.

Layout (formats.md 3.2): `/observations/{qpos,qvel,effort}`, `/observations/images/<cam>`, `/action`,
optional `/base_action` (Mobile ALOHA) and `/compress_len` (JPEG bytes zero-padded per frame). There is no
language in the file: the task is the directory name (`<dataset_dir>/<task_name>/episode_N.hdf5`).

JPEG frames are passed through unchanged (cut at `compress_len`); uncompressed frames are encoded once,
as PNG (lossless, default) or JPEG (`raw_image_encoding="jpeg"`).

Options (`SourceOptions.extra`): `raw_image_encoding` ("png" | "jpeg"), `control_hz` (default 50),
`instruction` (overrides the directory name).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from connectors.base import BadEpisode, Connector, SourceOptions
from connectors.hdf5.common import (
    RAW_IMAGE_ENCODINGS,
    UNIT_SEP,
    HDF5FormatError,
    encode_pixels,
    first_hdf5_file,
    hdf5_files,
    open_hdf5,
    policy,
    read_array,
    split_unit,
)
from connectors.registry import register
from schemas import Camera, Embodiment, Episode, Frame, Source, Space, Step, episode_id_for, fingerprint_of

DEFAULT_HZ = 50.0
ARM_JOINTS = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper")
ALOHA_NAMES = tuple(f"{side}_{j}" for side in ("left", "right") for j in ARM_JOINTS)
BASE_NAMES = ("base_linear_vel", "base_angular_vel")


def is_aloha_file(path: str | Path) -> bool:
    """True for an HDF5 file with `/observations/qpos` and `/action` (never raises)."""
    try:
        with open_hdf5(path) as h5:
            return "action" in h5 and "observations" in h5 and "qpos" in h5["observations"]
    except Exception:
        return False


def task_text(task_dir: str) -> str:
    """`transfer_cube` -> `transfer cube` (the task is the directory name)."""
    return task_dir.replace("_", " ").replace("-", " ").strip()


def _jpeg_rows(images: np.ndarray, compress_len: np.ndarray | None) -> list[bytes]:
    """Cut zero-padded JPEG rows at their true length (the matching `compress_len` row, else the EOI marker)."""
    rows = []
    for t in range(images.shape[0]):
        row = images[t].tobytes()
        length = None
        if compress_len is not None:
            length = int(compress_len[t])
            if row[length - 2:length] != b"\xff\xd9":
                length = None
        if length is None:
            stripped = row.rstrip(b"\x00")
            length = len(stripped)
        rows.append(row[:length])
    return rows


def _matching_lengths(first_row: bytes, compress_len: np.ndarray | None) -> np.ndarray | None:
    """The `compress_len` row that belongs to a camera (its order follows the recorder's camera list)."""
    if compress_len is None or compress_len.ndim != 2:
        return None
    for r in range(compress_len.shape[0]):
        n = int(compress_len[r, 0])
        if 2 <= n <= len(first_row) and first_row[n - 2:n] == b"\xff\xd9" and not first_row[n:].strip(b"\x00"):
            return compress_len[r]
    return None


@register
class AlohaConnector(Connector):
    """ALOHA/ACT episode files; a directory of task folders is one source, each file one unit."""

    name: ClassVar[str] = "aloha"
    description: ClassVar[str] = "ALOHA / ACT / Mobile ALOHA episode_N.hdf5 files (task = directory name)"
    version: ClassVar[str] = "1.0.0"
    release_notes: ClassVar[dict[str, str]] = {"1.0.0": "Raw and JPEG-compressed (compress_len) images."}

    def probe(self, uri: str) -> bool:
        first = first_hdf5_file(uri)
        return first is not None and is_aloha_file(first)

    def list_units(self, uri: str, options: SourceOptions) -> list[str]:
        root = Path(uri)
        if root.is_file():
            return [f"{root.parent}{UNIT_SEP}{root.name}"]
        return [f"{root}{UNIT_SEP}{p.relative_to(root)}" for p in hdf5_files(uri)]

    def episodes(self, unit: str, options: SourceOptions) -> Iterator[Episode | BadEpisode]:
        root, relative = split_unit(unit)
        units = [unit] if relative else self.list_units(root, options)
        for n, item in enumerate(units):
            if options.limit is not None and n >= options.limit:
                return
            unit_root, rel = split_unit(item)
            path = Path(unit_root) / rel
            try:
                yield self._episode(Path(unit_root), path, options)
            except (HDF5FormatError, ValueError, KeyError) as exc:
                yield BadEpisode(file=str(path), record=rel, reason=str(exc).strip("'\""))

    def _episode(self, root: Path, path: Path, options: SourceOptions) -> Episode:
        encoding = policy(options, "raw_image_encoding", RAW_IMAGE_ENCODINGS)
        hz = float(options.extra.get("control_hz", DEFAULT_HZ))
        key = str(path.relative_to(root))
        with open_hdf5(path) as h5:
            if "action" not in h5 or "observations" not in h5 or "qpos" not in h5["observations"]:
                raise HDF5FormatError(f"{path} is not an ALOHA episode: it needs /action and /observations/qpos "
                                      f"(has {sorted(h5.keys())})")
            action = read_array(h5["action"], f"{path}:/action").astype(np.float32)
            qpos = read_array(h5["observations/qpos"], f"{path}:/observations/qpos").astype(np.float32)
            n = int(action.shape[0])
            if action.ndim != 2 or qpos.shape[0] != n:
                raise HDF5FormatError(f"{path}: /action has shape {action.shape} but /observations/qpos has "
                                      f"{qpos.shape}; both need one row per step")
            flags: list[str] = []
            action_names = list(ALOHA_NAMES) if action.shape[1] == len(ALOHA_NAMES) else []
            has_base = "base_action" in h5
            if has_base:
                base = read_array(h5["base_action"], f"{path}:/base_action").astype(np.float32)
                if base.shape[0] == n:
                    action = np.concatenate([action, base.reshape(n, -1)], axis=1)
                    action_names = action_names + list(BASE_NAMES) if action_names else []
                else:
                    flags.append("base_action_length_mismatch")
            compress_len = read_array(h5["compress_len"], f"{path}:/compress_len") if "compress_len" in h5 else None
            cameras, frames_by_cam = self._cameras(h5, path, compress_len, encoding, flags)
            attrs = {k: _plain(v) for k, v in h5.attrs.items()}
        digest = hashlib.sha256(action.tobytes())
        digest.update(qpos.tobytes())
        for cam_frames in frames_by_cam.values():
            for _fmt, data in cam_frames[:: max(1, n // 8)]:
                digest.update(data)
        steps = []
        for t in range(n):
            frames = [Frame(camera=cam, format=fmt_data[t][0], data=fmt_data[t][1])
                      for cam, fmt_data in frames_by_cam.items() if t < len(fmt_data)]
            steps.append(Step(index=t, timestamp_s=t / hz, action=action[t].tolist(), state=qpos[t].tolist(),
                              is_first=t == 0, is_last=t == n - 1, frames=frames))
        task_dir = path.parent.name
        instruction = options.extra.get("instruction") or task_text(task_dir)
        dataset = options.dataset or root.name or "aloha"
        return Episode(
            episode_id=episode_id_for(dataset, key),
            dataset=dataset,
            source=Source(format=self.name, uri=str(root), key=key, fingerprint=fingerprint_of(digest.hexdigest())),
            embodiment=Embodiment(robot="mobile_aloha" if has_base else "aloha",
                                  kind="mobile_manipulator" if has_base else "bimanual",
                                  is_sim=bool(attrs.get("sim", False))),
            action_space=Space(kind="joint_pos", dim=int(action.shape[1]), names=action_names),
            state_space=Space(kind="joint_pos", dim=int(qpos.shape[1]),
                              names=list(ALOHA_NAMES) if qpos.shape[1] == len(ALOHA_NAMES) else []),
            control_hz=hz,
            instruction=instruction,
            task_type=task_dir,
            cameras=cameras,
            n_steps=n,
            duration_s=n / hz,
            quality_flags=flags,
            metadata={"aloha": {"file": str(path), "attrs": attrs, "compressed": compress_len is not None}},
            steps=steps,
        )

    def _cameras(self, h5: Any, path: Path, compress_len: np.ndarray | None, encoding: str,
                 flags: list[str]) -> tuple[list[Camera], dict[str, list[tuple[str, bytes]]]]:
        cameras: list[Camera] = []
        frames: dict[str, list[tuple[str, bytes]]] = {}
        group = h5["observations"].get("images")
        if group is None:
            flags.append("no_cameras")
            return cameras, frames
        for cam in group:
            images = read_array(group[cam], f"{path}:/observations/images/{cam}")
            if images.ndim == 2:  # JPEG bytes, zero-padded
                lengths = _matching_lengths(images[0].tobytes(), compress_len) if len(images) else None
                rows = _jpeg_rows(images, lengths)
                bad = [t for t, row in enumerate(rows) if row[:3] != b"\xff\xd8\xff"]
                if bad:
                    raise HDF5FormatError(f"{path}: camera {cam!r} frame {bad[0]} is not a JPEG; the file may be "
                                          "damaged")
                height, width = _jpeg_size(rows[0]) if rows else (0, 0)
                frames[cam] = [("jpeg", row) for row in rows]
            elif images.ndim in (3, 4):
                height, width = int(images.shape[1]), int(images.shape[2])
                frames[cam] = [encode_pixels(img, encoding=encoding) for img in images]
            else:
                raise HDF5FormatError(f"{path}: camera {cam!r} has shape {images.shape}; expected (T,H,W,3) pixels "
                                      "or (T,padded_len) JPEG bytes")
            cameras.append(Camera(name=cam, kind="depth" if "depth" in cam else "rgb", height=height, width=width))
        return cameras, frames


def _jpeg_size(data: bytes) -> tuple[int, int]:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return img.height, img.width


def _plain(value: Any) -> Any:
    """An HDF5 attribute as JSON-friendly Python."""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
