"""The ALFRED connector: `json_2.1.0` and `full_2.1.0` trials -> schemas.Episode (one episode per trial).

Layout: `<root>/<split>/<task_type>-<object>-<mrecep>-<receptacle>-<scene>/trial_T.../traj_data.json`, test splits
`<root>/tests_{seen,unseen}/trial_T.../traj_data.json`; `full_2.1.0` adds `raw_images/*.jpg` per trial.

Mapping: every annotator's `task_desc` is kept (the first is canonical, the rest `instructions_alt`);
`high_descs` become subgoal segments aligned to `high_pddl` by `high_idx` (the final NoOp has none); steps are
`low_actions` as discrete actions with their args (interaction masks kept as ALFRED's RLE); a step's frame is
the first image of its `low_idx`, found in raw_images by file stem (`images[].image_name` says .png, the files
are .jpg). Test-split trials have no plan and no images: they become language-only episodes (0 steps, flagged
`language_only`). Embodiment: the AI2-THOR agent, simulated, 5 fps.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar

import fsspec

from connectors.base import BadEpisode, Connector, SourceOptions
from connectors.registry import register
from connectors.rlds.reader import full_uri, open_fs
from schemas import Camera, Embodiment, Episode, Frame, Segment, Source, Space, Step, episode_id_for, fingerprint_of

TRAJ_FILE = "traj_data.json"
IMAGES_DIR = "raw_images"
SPLITS = ("train", "valid_seen", "valid_unseen", "tests_seen", "tests_unseen")
FPS = 5.0
IMAGE_SIZE = 300
CAMERA = "ego"
ROBOT = "AI2-THOR agent"
ACTIONS = ("MoveAhead_25", "RotateLeft_90", "RotateRight_90", "LookDown_15", "LookUp_15", "PickupObject",
           "PutObject", "OpenObject", "CloseObject", "ToggleObjectOn", "ToggleObjectOff", "SliceObject")
"""The low-level action vocabulary of ALFRED (navigation + interaction)."""
LANGUAGE_ONLY = "language_only"


class TrialError(ValueError):
    """A traj_data.json that does not have the ALFRED structure."""


def _fs(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    return open_fs(uri)


def find_trials(uri: str, *, first_only: bool = False) -> list[str]:
    """traj_data.json files at or under `uri` (a file, a trial, a task, a split or a dataset root)."""
    fs, root = _fs(uri)
    root = root.rstrip("/")
    if root.endswith(TRAJ_FILE):
        return [full_uri(uri, root)] if fs.isfile(root) else []
    found: list[str] = []
    for depth in range(4):
        pattern = "/".join([root, *(["*"] * depth), TRAJ_FILE])
        hits = sorted(fs.glob(pattern))
        found.extend(hits)
        if first_only and found:
            break
    return [full_uri(uri, p) for p in found]


def split_of(path: str) -> str | None:
    """The ALFRED split named in a trial's path."""
    parts = path.replace("\\", "/").split("/")
    for part in reversed(parts):
        if part in SPLITS:
            return part
    return None


def trial_key(path: str) -> str:
    """A stable key: the path from the split directory (or the last two directories) to the trial."""
    parts = path.replace("\\", "/").rstrip("/").split("/")[:-1]
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] in SPLITS:
            return "/".join(parts[i:])
    return "/".join(parts[-2:])


def _annotations(data: dict[str, Any]) -> list[dict[str, Any]]:
    anns = (data.get("turk_annotations") or {}).get("anns")
    if not isinstance(anns, list) or not anns:
        raise TrialError("turk_annotations.anns is missing or empty")
    return anns


def trial_to_episode(data: dict[str, Any], *, path: str, dataset: str, fingerprint: str,
                     frames: dict[str, bytes] | None, image_names: set[str] | None) -> Episode:
    """Convert one parsed traj_data.json.

    Args:
        frames: stem -> JPEG bytes of the frames used as step observations, or None when there is no raw_images.
        image_names: stems present in raw_images (to report missing files), or None.

    Raises:
        TrialError: the structure is not ALFRED's (missing keys, misaligned indices, missing image files).
    """
    anns = _annotations(data)
    descs = [str(a.get("task_desc") or "").strip() for a in anns]
    canonical = next((d for d in descs if d), None)
    alternatives = [d for d in descs if d and d != canonical]
    key = trial_key(path)
    split = split_of(path)
    scene = data.get("scene") or {}
    plan = data.get("plan")
    metadata: dict[str, Any] = {
        "task_id": data.get("task_id"),
        "annotations": [{"task_desc": a.get("task_desc"), "high_descs": a.get("high_descs", []),
                         "votes": a.get("votes"), "assignment_id": a.get("assignment_id")} for a in anns],
        "scene": {k: scene.get(k) for k in ("scene_num", "random_seed", "dirty_and_empty", "init_action")
                  if k in scene},
        "action_vocabulary": list(ACTIONS),
    }
    common: dict[str, Any] = dict(
        episode_id=episode_id_for(dataset, key), dataset=dataset,
        source=Source(format="alfred", uri=path, key=key, fingerprint=fingerprint),
        embodiment=Embodiment(robot=ROBOT, kind="virtual", is_sim=True),
        action_space=Space(kind="discrete", dim=0), control_hz=FPS, instruction=canonical,
        instructions_alt=alternatives, scene=scene.get("floor_plan"), split=split,
    )
    if not plan:
        metadata["language_only"] = True
        return Episode(**common, n_steps=0, duration_s=0.0, quality_flags=[LANGUAGE_ONLY],
                       task_type=data.get("task_type"), metadata=metadata)
    try:
        low = plan["low_actions"]
        high = plan["high_pddl"]
    except (KeyError, TypeError):
        raise TrialError("plan has no low_actions / high_pddl") from None
    params = data.get("pddl_params") or {}
    objects = [str(params[k]) for k in ("object_target", "mrecep_target", "parent_target", "toggle_target")
               if params.get(k)]
    images = data.get("images") or []
    first_image: dict[int, int] = {}
    per_step: dict[int, int] = {}
    for pos, image in enumerate(images):
        low_idx = int(image["low_idx"])
        first_image.setdefault(low_idx, pos)
        per_step[low_idx] = per_step.get(low_idx, 0) + 1
    stems = [str(img["image_name"]).rsplit(".", 1)[0] for img in images]
    if image_names is not None:
        missing = [s for s in stems if s not in image_names]
        if missing:
            raise TrialError(f"{len(missing)} of {len(stems)} images listed in traj_data.json are missing from "
                             f"{IMAGES_DIR}/ (e.g. {missing[0]}.jpg)")
    n_high = len(high)
    canonical_ann = next((a for a in anns if str(a.get("task_desc") or "").strip() == canonical), anns[0])
    high_descs = [str(d).strip() for d in canonical_ann.get("high_descs", [])]
    steps: list[Step] = []
    for i, action in enumerate(low):
        hi = int(action["high_idx"])
        if not 0 <= hi < n_high:
            raise TrialError(f"low action {i} has high_idx {hi}, outside the {n_high} high-level actions")
        discrete = action.get("discrete_action") or {}
        args = dict(discrete.get("args") or {})
        if "mask" in args:
            args["mask_rle"] = args.pop("mask")
        args["api_action"] = action.get("api_action") or {}
        args["high_idx"] = hi
        step_frames = []
        if frames is not None and i in first_image:
            stem = stems[first_image[i]]
            step_frames.append(Frame(camera=CAMERA, format="jpeg", data=frames[stem]))
        pos = first_image.get(i)
        steps.append(Step(index=i, timestamp_s=(pos if pos is not None else i) / FPS, action=[],
                          is_first=i == 0, is_last=i == len(low) - 1, is_terminal=i == len(low) - 1,
                          language=high_descs[hi] if hi < len(high_descs) else None,
                          discrete_action=str(discrete.get("action") or ""), action_args=args, frames=step_frames))
    segments: list[Segment] = []
    prev_end = 0
    for hi in range(n_high - 1):  # the last high-level action is the NoOp: no description, no segment
        idx = [i for i, a in enumerate(low) if int(a["high_idx"]) == hi]
        start, end = (idx[0], idx[-1] + 1) if idx else (prev_end, prev_end)
        prev_end = end
        text = high_descs[hi] if hi < len(high_descs) else str((high[hi].get("discrete_action") or {}).get("action"))
        segments.append(Segment(start=start, end=end, text=text, kind="subgoal"))
    metadata["high_pddl"] = [{"high_idx": h.get("high_idx"), "action": (h.get("discrete_action") or {}).get("action"),
                              "args": (h.get("discrete_action") or {}).get("args")} for h in high]
    metadata["frames_per_step"] = [per_step.get(i, 0) for i in range(len(low))]
    metadata["n_images"] = len(images)
    metadata["pddl_params"] = params
    n = len(steps)
    duration = (len(images) / FPS) if images else n / FPS
    return Episode(**common, n_steps=n, duration_s=duration, segments=segments, steps=steps,
                   cameras=[Camera(name=CAMERA, height=IMAGE_SIZE, width=IMAGE_SIZE, missing=frames is None)],
                   success=True, task_type=data.get("task_type"), objects=objects, metadata=metadata)


@register
class ALFREDConnector(Connector):
    """ALFRED trials (json_2.1.0 / full_2.1.0)."""

    name = "alfred"
    description = "ALFRED (AI2-THOR) expert trials: traj_data.json, raw_images/*.jpg in full_2.1.0"
    version = "1.0.0"
    release_notes: ClassVar[dict[str, str]] = {"1.0.0": "json_2.1.0 and full_2.1.0; test splits as language-only."}

    def probe(self, uri: str) -> bool:
        try:
            hits = find_trials(uri, first_only=True)
            if any(hit.rsplit("/", 2)[-2].startswith("trial_T") for hit in hits):
                return True  # ALFRED's layout, even when a traj_data.json is damaged
            for hit in hits[:5]:
                fs, path = _fs(hit)
                with fs.open(path, "rb") as fh:
                    head = fh.read(65536)
                if b"turk_annotations" in head:
                    return True
            return False
        except Exception:  # probe never raises on foreign input
            return False

    def list_units(self, uri: str, options: SourceOptions) -> list[str]:
        trials = find_trials(uri)
        if options.splits:
            trials = [t for t in trials if split_of(t) in options.splits]
        if options.limit is not None:
            trials = trials[: options.limit]
        return trials

    def episodes(self, unit: str, options: SourceOptions) -> Iterator[Episode | BadEpisode]:
        if not unit.endswith(TRAJ_FILE):
            for trial in self.list_units(unit, options):
                yield from self.episodes(trial, options)
            return
        fs, path = _fs(unit)
        record = trial_key(unit)
        try:
            raw = fs.cat_file(path)
        except FileNotFoundError:
            yield BadEpisode(file=unit, record=record, reason="traj_data.json not found")
            return
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            yield BadEpisode(file=unit, record=record, reason=f"traj_data.json is not valid JSON: {exc}")
            return
        if not isinstance(data, dict):
            yield BadEpisode(file=unit, record=record, reason="traj_data.json does not hold a JSON object")
            return
        trial_dir = path.rsplit("/", 1)[0]
        images_dir = f"{trial_dir}/{IMAGES_DIR}"
        frames: dict[str, bytes] | None = None
        image_names: set[str] | None = None
        parts: list[bytes | str] = [raw]
        try:
            if fs.isdir(images_dir):
                listing = {p["name"].rsplit("/", 1)[-1]: p for p in fs.ls(images_dir, detail=True)}
                by_stem = {name.rsplit(".", 1)[0]: name for name in listing}
                image_names = set(by_stem)
                wanted: dict[int, str] = {}
                for img in data.get("images") or []:
                    wanted.setdefault(int(img["low_idx"]), str(img["image_name"]).rsplit(".", 1)[0])
                frames = {}
                for stem in wanted.values():
                    if stem in by_stem:
                        frames[stem] = fs.cat_file(f"{images_dir}/{by_stem[stem]}")
                parts.extend(f"{n}:{listing[n].get('size')}" for n in sorted(listing))
            episode = trial_to_episode(data, path=unit, dataset=options.dataset or "alfred",
                                       fingerprint=fingerprint_of(*parts), frames=frames, image_names=image_names)
        except (TrialError, KeyError, TypeError, ValueError) as exc:
            reason = str(exc) if isinstance(exc, TrialError) else f"not an ALFRED trial: {type(exc).__name__}: {exc}"
            yield BadEpisode(file=unit, record=record, reason=reason)
            return
        yield episode
