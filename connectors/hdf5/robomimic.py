"""robomimic post-processed files, LIBERO, and robosuite raw demo files -> `schemas.Episode`.

All three keep many demos per file under `/data/demo_<i>` (formats.md 3.3); one file is one work unit.

- robomimic: `actions`, `obs/<key>` (low-dim keys become the state, image keys the cameras), `rewards`,
  `dones`; `/data` attr `env_args` (JSON); `/mask/<filter>` lists demo names: `train`/`valid`/`test`
  become the split, every filter becomes a tag `mask:<filter>`.
- LIBERO: the same plus `problem_info` (JSON, `language_instruction`) and `bddl_file_name`. LIBERO
  images are stored upside down; they are rotated 180 degrees before encoding.
- robosuite raw (`states` + `actions`, no obs): the MuJoCo sim state is the state, no cameras.
- robosuite 0.1 raw files have **no `actions`**. Decision: the episode is ingested, flagged `no_actions`,
  and its action is rebuilt from `joint_velocities` + `gripper_actuations` (what robosuite 0.x played
  back), flagged `actions_from:joint_velocities+gripper_actuations`. With neither, the action is empty.
  `missing_actions="reject"` turns such demos into `BadEpisode`s with that reason instead.

Options (`SourceOptions.extra`): `missing_actions` ("flag" | "reject"), `raw_image_encoding` ("png" |
"jpeg"), `control_hz` (default: env_args control_freq, else 20).
"""

from __future__ import annotations

import hashlib
import json
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
    natural_key,
    open_hdf5,
    policy,
    read_array,
    split_unit,
)
from connectors.registry import register
from schemas import Camera, Embodiment, Episode, Frame, Source, Space, Step, episode_id_for, fingerprint_of

DEFAULT_HZ = 20.0
DEMOS_PER_UNIT = 50
"""Demos per work unit: big files are split so the engine can convert them in parallel."""
MISSING_ACTIONS = ("flag", "reject")
SPLIT_MASKS = ("train", "valid", "test", "val")
IMAGE_SUFFIXES = ("_image", "_rgb", "_depth")
OSC_NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
CONTROLLER_KINDS = {"OSC_POSE": "eef_delta", "OSC_POSITION": "eef_delta", "IK_POSE": "eef_delta",
                    "JOINT_VELOCITY": "joint_vel", "JOINT_POSITION": "joint_pos"}


def _json_attr(attrs: Any, name: str) -> dict[str, Any]:
    raw = attrs.get(name)
    if raw is None:
        return {}
    if isinstance(raw, bytes):
        raw = raw.decode(errors="replace")
    try:
        value = json.loads(raw)
    except (TypeError, json.JSONDecodeError):
        return {"raw": str(raw)}
    return value if isinstance(value, dict) else {"value": value}


def _text_attr(attrs: Any, name: str) -> str | None:
    raw = attrs.get(name)
    if raw is None:
        return None
    return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)


def variant_of(h5: Any) -> str | None:
    """"libero", "robomimic", "robosuite_raw", or None when the file is not a /data/demo_* file."""
    data = h5.get("data")
    if data is None or not hasattr(data, "keys"):
        return None
    demos = [k for k in data if k.startswith("demo")]
    if not demos:
        return None
    if "problem_info" in data.attrs:
        return "libero"
    first = data[sorted(demos, key=natural_key)[0]]
    if "obs" in first:
        return "robomimic"
    if "states" in first:
        return "robosuite_raw"
    return None


def _camera_name(key: str) -> str:
    for suffix in IMAGE_SUFFIXES:
        if key.endswith(suffix) and key != suffix:
            return key[: -len(suffix)] if suffix != "_depth" else key
    return key


def _is_image(key: str, shape: tuple[int, ...], dtype: Any) -> bool:
    return len(shape) == 4 and (np.dtype(dtype) == np.uint8 or key.endswith(IMAGE_SUFFIXES))


@register
class RobomimicConnector(Connector):
    """robomimic / LIBERO / robosuite raw demo files (many demos per file)."""

    name: ClassVar[str] = "robomimic"
    description: ClassVar[str] = "robomimic and LIBERO HDF5 (data/demo_i with obs), robosuite raw demo.hdf5"
    version: ClassVar[str] = "1.0.0"
    release_notes: ClassVar[dict[str, str]] = {"1.0.0": "robomimic, LIBERO (flipped images), robosuite 1.x and 0.1."}

    def probe(self, uri: str) -> bool:
        first = first_hdf5_file(uri)
        if first is None:
            return False
        try:
            with open_hdf5(first) as h5:
                return variant_of(h5) is not None
        except Exception:
            return False

    def list_units(self, uri: str, options: SourceOptions) -> list[str]:
        """Files are split into groups of `DEMOS_PER_UNIT` demos (`root::file::demo_a,demo_b`), so one big file
        is converted in parallel; a file that cannot be opened is one unit that reports why."""
        root = Path(uri)
        files = [root] if root.is_file() else hdf5_files(uri)
        base = root.parent if root.is_file() else root
        units = []
        for path in files:
            unit = f"{base}{UNIT_SEP}{path.relative_to(base)}"
            try:
                with open_hdf5(path) as h5:
                    demos = sorted((k for k in h5.get("data", {}) if k.startswith("demo")), key=natural_key)
            except (HDF5FormatError, TypeError):
                demos = []
            if len(demos) <= DEMOS_PER_UNIT:
                units.append(unit)
                continue
            for i in range(0, len(demos), DEMOS_PER_UNIT):
                units.append(f"{unit}{UNIT_SEP}{','.join(demos[i:i + DEMOS_PER_UNIT])}")
        return units

    def episodes(self, unit: str, options: SourceOptions) -> Iterator[Episode | BadEpisode]:
        root, relative = split_unit(unit)
        units = [unit] if relative else self.list_units(root, options)
        emitted = 0
        for item in units:
            unit_root, rest = split_unit(item)
            rel, _, only = rest.partition(UNIT_SEP)
            path = Path(unit_root) / rel
            chosen = set(only.split(",")) if only else None
            for episode in self._file(Path(unit_root), path, options, chosen):
                yield episode
                emitted += 1
                if options.limit is not None and emitted >= options.limit:
                    return

    def _file(self, root: Path, path: Path, options: SourceOptions,
              chosen: set[str] | None = None) -> Iterator[Episode | BadEpisode]:
        try:
            with open_hdf5(path) as h5:
                variant = variant_of(h5)
                if variant is None:
                    raise HDF5FormatError(f"{path} has no /data/demo_* groups with obs or states; it is not a "
                                          "robomimic, LIBERO or robosuite demo file")
                context = self._context(h5, path, variant, options)
                demos = sorted((k for k in h5["data"] if k.startswith("demo")), key=natural_key)
                wanted = set(options.splits)
                for demo in demos:
                    if chosen is not None and demo not in chosen:
                        continue
                    split = context["splits"].get(demo)
                    if wanted and split not in wanted:
                        continue
                    try:
                        yield self._episode(h5["data"][demo], demo, root, path, context, options)
                    except (HDF5FormatError, ValueError, KeyError) as exc:
                        yield BadEpisode(file=str(path), record=demo, reason=str(exc).strip("'\""))
        except HDF5FormatError as exc:
            yield BadEpisode(file=str(path), record="*", reason=str(exc))

    def _context(self, h5: Any, path: Path, variant: str, options: SourceOptions) -> dict[str, Any]:
        """File-level facts shared by its demos: env, robot, controller, language, masks."""
        data = h5["data"]
        env_args = _json_attr(data.attrs, "env_args")
        env_info = _json_attr(data.attrs, "env_info")
        kwargs = env_args.get("env_kwargs") or env_info
        env_name = env_args.get("env_name") or _text_attr(data.attrs, "env") or env_info.get("env_name")
        robots = kwargs.get("robots") or env_info.get("robots")
        robot = robots[0] if isinstance(robots, list) and robots else robots
        if not robot and env_name:  # robosuite 0.x names the robot in the env: SawyerLift
            robot = next((r for r in ("Sawyer", "Baxter", "Panda") if str(env_name).startswith(r)), None)
        controller = kwargs.get("controller_configs") or {}
        if isinstance(controller, dict) and "body_parts" in controller:  # robosuite >= 1.5 composite config
            controller = next(iter(controller["body_parts"].values()), {})
        control_type = controller.get("type") if isinstance(controller, dict) else None
        hz = float(options.extra.get("control_hz") or kwargs.get("control_freq") or DEFAULT_HZ)
        problem = _json_attr(data.attrs, "problem_info")
        splits: dict[str, str] = {}
        tags: dict[str, list[str]] = {}
        if "mask" in h5:
            for name in sorted(h5["mask"].keys()):
                for demo in read_array(h5["mask"][name], f"{path}:/mask/{name}").tolist():
                    demo_name = demo.decode() if isinstance(demo, bytes) else str(demo)
                    tags.setdefault(demo_name, []).append(f"mask:{name}")
                    if name in SPLIT_MASKS:
                        splits[demo_name] = "valid" if name == "val" else name
        return {"variant": variant, "env_args": env_args, "env_name": env_name, "robot": str(robot or "unknown"),
                "control_type": control_type, "hz": hz, "language": problem.get("language_instruction"),
                "problem_info": problem, "bddl_file_name": _text_attr(data.attrs, "bddl_file_name"),
                "splits": splits, "tags": tags,
                "repository_version": _text_attr(data.attrs, "repository_version")}

    def _episode(self, group: Any, demo: str, root: Path, path: Path, context: dict[str, Any],
                 options: SourceOptions) -> Episode | BadEpisode:
        where = f"{path}:/data/{demo}"
        variant = context["variant"]
        flags: list[str] = []
        action_kind = CONTROLLER_KINDS.get(str(context["control_type"]), "other")
        if "actions" in group:
            actions = read_array(group["actions"], f"{where}/actions").astype(np.float32)
            if context["control_type"] is None and variant != "robosuite_raw":
                action_kind = "eef_delta"  # robomimic's datasets are OSC_POSE unless env_args says otherwise
        else:
            reason = (f"{where} has no `actions` dataset (robosuite {context['repository_version'] or '0.x'} "
                      "format); re-collect or convert it with robosuite >= 1.0 to get actions")
            if policy(options, "missing_actions", MISSING_ACTIONS) == "reject":
                return BadEpisode(file=str(path), record=demo, reason=reason)
            flags.append("no_actions")
            parts = [k for k in ("joint_velocities", "gripper_actuations") if k in group]
            if len(parts) == 2:
                actions = np.concatenate([read_array(group[k], f"{where}/{k}") for k in parts], axis=1)
                actions = actions.astype(np.float32)
                flags.append("actions_from:" + "+".join(parts))
                action_kind = "joint_vel"
            else:
                actions = np.zeros((self._length(group, where), 0), dtype=np.float32)
                action_kind = "other"
        n = int(actions.shape[0])
        state, state_names, cameras, frames = self._observations(group, where, n, variant, options)
        rewards = read_array(group["rewards"], f"{where}/rewards").reshape(-1) if "rewards" in group else None
        dones = read_array(group["dones"], f"{where}/dones").reshape(-1) if "dones" in group else None
        if state is not None and state.shape[0] != n:
            raise HDF5FormatError(f"{where}: state has {state.shape[0]} rows but actions has {n}")
        hz = context["hz"]
        digest = hashlib.sha256(actions.tobytes())
        if state is not None:
            digest.update(state.tobytes())
        for cam_frames in frames.values():
            for _, data in cam_frames[:: max(1, n // 8)]:
                digest.update(data)
        state_rows = state.tolist() if state is not None else None
        action_rows = actions.tolist()
        steps = []
        for t in range(n):
            steps.append(Step(
                index=t, timestamp_s=t / hz, action=action_rows[t], state=state_rows[t] if state_rows else None,
                reward=float(rewards[t]) if rewards is not None and t < len(rewards) else None,
                is_first=t == 0, is_last=t == n - 1,
                is_terminal=bool(dones[t]) if dones is not None and t < len(dones) else False,
                language=context["language"],
                frames=[Frame(camera=cam, format=fmt_data[t][0], data=fmt_data[t][1]) for cam, fmt_data in
                        frames.items()]))
        success = bool(dones[-1]) if dones is not None and len(dones) and variant != "robosuite_raw" else None
        if success is None and rewards is not None and len(rewards):
            success = bool(rewards.max() > 0)
        dataset = options.dataset or path.stem
        key = f"{path.relative_to(root)}/{demo}"
        ep_meta = _json_attr(group.attrs, "ep_meta")
        instruction = context["language"] or ep_meta.get("lang")
        action_names = list(OSC_NAMES) if action_kind == "eef_delta" and actions.shape[1] == len(OSC_NAMES) else []
        return Episode(
            episode_id=episode_id_for(dataset, key),
            dataset=dataset,
            source=Source(format=self.name, uri=str(path), key=key, fingerprint=fingerprint_of(digest.hexdigest())),
            embodiment=Embodiment(robot=context["robot"], kind="arm", is_sim=True),
            action_space=Space(kind=action_kind, dim=int(actions.shape[1]), names=action_names),
            state_space=None if state is None else Space(
                kind="other" if variant == "robosuite_raw" else "joint_pos", dim=int(state.shape[1]),
                names=state_names),
            control_hz=hz,
            instruction=instruction,
            cameras=cameras,
            n_steps=n,
            duration_s=n / hz,
            success=success,
            scene=context["env_name"],
            task_type=context["env_name"],
            split=context["splits"].get(demo),
            tags=context["tags"].get(demo, []),
            quality_flags=flags,
            metadata={"hdf5": {"variant": variant, "file": str(path), "demo": demo,
                               "env_args": context["env_args"], "problem_info": context["problem_info"],
                               "bddl_file_name": context["bddl_file_name"],
                               "repository_version": context["repository_version"],
                               "num_samples": _plain_int(group.attrs.get("num_samples")),
                               "has_next_obs": "next_obs" in group}},
            steps=steps,
        )

    def _length(self, group: Any, where: str) -> int:
        for key in ("states", "rewards", "dones"):
            if key in group:
                return int(group[key].shape[0])
        raise HDF5FormatError(f"{where} has neither actions nor states; its length is unknown")

    def _observations(self, group: Any, where: str, n: int, variant: str, options: SourceOptions,
                      ) -> tuple[np.ndarray | None, list[str], list[Camera], dict[str, list[tuple[str, bytes]]]]:
        encoding = policy(options, "raw_image_encoding", RAW_IMAGE_ENCODINGS)
        if "obs" not in group:
            if "states" not in group:
                return None, [], [], {}
            states = read_array(group["states"], f"{where}/states").astype(np.float32).reshape(n, -1)
            return states, [], [], {}
        obs = group["obs"]
        parts, names = [], []
        cameras: list[Camera] = []
        frames: dict[str, list[tuple[str, bytes]]] = {}
        for key in sorted(obs.keys()):
            dataset = obs[key]
            if _is_image(key, dataset.shape, dataset.dtype):
                pixels = read_array(dataset, f"{where}/obs/{key}")
                if variant == "libero":
                    pixels = pixels[:, ::-1, ::-1]  # LIBERO renders upside down: rotate 180 degrees
                cam = _camera_name(key)
                frames[cam] = [encode_pixels(img, encoding=encoding) for img in pixels]
                cameras.append(Camera(name=cam, kind="depth" if "depth" in key else "rgb",
                                      height=int(pixels.shape[1]), width=int(pixels.shape[2])))
                continue
            values = read_array(dataset, f"{where}/obs/{key}").astype(np.float32).reshape(dataset.shape[0], -1)
            parts.append(values)
            names += [key] if values.shape[1] == 1 else [f"{key}_{i}" for i in range(values.shape[1])]
        state = np.concatenate(parts, axis=1) if parts else None
        return state, names, cameras, frames


def _plain_int(value: Any) -> int | None:
    return None if value is None else int(value)
