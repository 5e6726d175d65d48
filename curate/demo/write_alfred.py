"""A small procedural virtual agent that writes ALFRED-format trials (json_2.1.0 layout + raw_images/*.jpg).

    from curate.demo.write_alfred import write
    root = write("/tmp/demo_alfred", trials=6, seed=7)   # /tmp/demo_alfred/json_2.1.0/<split>/<task>/<trial>/
    # then: curate ingest /tmp/demo_alfred/json_2.1.0 --lake ./lake

Each trial is a pick-and-place plan (GotoLocation, PickupObject, GotoLocation, PutObject, NoOp) expanded into
low-level navigation and interaction actions (with bbox and RLE masks), several 300x300 JPEG frames per low
action (named .png in traj_data.json, stored as .jpg, exactly as ALFRED ships them), three annotators' task and
step descriptions, and a `tests_seen` trial with language only.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

SIZE = 300
OBJECTS = ("Apple", "Mug", "Book", "Pencil", "SoapBar", "Tomato", "Plate", "Cup")
RECEPTACLES = ("CounterTop", "Shelf", "Fridge", "SinkBasin", "DiningTable", "Drawer")
NAV = ("MoveAhead_25", "RotateLeft_90", "RotateRight_90", "LookDown_15", "LookUp_15")
NAV_API = {"MoveAhead_25": "MoveAhead", "RotateLeft_90": "RotateLeft", "RotateRight_90": "RotateRight",
           "LookDown_15": "LookDown", "LookUp_15": "LookUp"}
TASK_PHRASES = ("Put the {o} on the {r}.", "Move a {o} to the {r}.", "place the {o} onto the {r}",
                "Take the {o} and leave it on the {r}.")


def _frame(rng: random.Random, scene: int, step: int, target: str) -> bytes:
    hue = (scene * 37) % 255
    img = Image.new("RGB", (SIZE, SIZE), (hue, 120, 255 - hue))
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, 200, SIZE, SIZE], fill=(90 + step % 40, 80, 60))
    x = 40 + (step * 23 + len(target) * 11) % 200
    draw.rectangle([x, 150, x + 40, 190], fill=(200, 40 + rng.randrange(60), 40))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def _mask_rle(x: int, y: int, w: int, h: int) -> list[list[int]]:
    return [[(y + r) * SIZE + x, w] for r in range(h)]


def _trial(rng: random.Random, index: int, split: str) -> tuple[str, dict[str, Any], list[tuple[str, bytes]]]:
    obj, recep = rng.choice(OBJECTS), rng.choice(RECEPTACLES)
    scene = rng.randrange(1, 30)
    task_type = "pick_and_place_simple"
    trial_id = f"trial_T2019{index:02d}{rng.randrange(10, 28):02d}_{rng.randrange(100000, 999999)}_{index:06d}"
    high = [("GotoLocation", [obj.lower()]), ("PickupObject", [obj.lower()]), ("GotoLocation", [recep.lower()]),
            ("PutObject", [obj.lower(), recep.lower()]), ("NoOp", [])]
    low: list[dict[str, Any]] = []
    images: list[dict[str, Any]] = []
    files: list[tuple[str, bytes]] = []
    for hi, (action, _args) in enumerate(high[:-1]):
        if action == "GotoLocation":
            for _ in range(rng.randrange(2, 5)):
                nav = rng.choice(NAV)
                low.append({"api_action": {"action": NAV_API[nav], "forceAction": True},
                            "discrete_action": {"action": nav, "args": {}}, "high_idx": hi})
        else:
            x, y, w, h = rng.randrange(50, 200), rng.randrange(100, 200), 30, 20
            api: dict[str, Any] = {"action": action, "objectId": f"{obj}|+01.00|+00.90|-00.50"}
            if action == "PutObject":
                api["receptacleObjectId"] = f"{recep}|+00.00|+00.00|+00.00"
            low.append({"api_action": api, "discrete_action": {
                "action": action, "args": {"bbox": [x, y, x + w, y + h], "mask": _mask_rle(x, y, w, h)}},
                "high_idx": hi})
    for li, action in enumerate(low):
        for _ in range(rng.randrange(1, 4)):
            name = f"{len(images):09d}"
            images.append({"high_idx": action["high_idx"], "image_name": f"{name}.png", "low_idx": li})
            files.append((f"{name}.jpg", _frame(rng, scene, len(images), obj)))
    high_descs_sets = []
    anns = []
    for a in range(3):
        descs = [f"Walk to the {obj.lower()}.", f"Pick up the {obj.lower()}.", f"Go to the {recep.lower()}.",
                 f"Put the {obj.lower()} on the {recep.lower()}."]
        if a:
            descs = [d.lower().rstrip(".") for d in descs]
        high_descs_sets.append(descs)
        anns.append({"assignment_id": f"A{index:03d}_{a}", "high_descs": descs,
                     "task_desc": rng.choice(TASK_PHRASES).format(o=obj.lower(), r=recep.lower()), "votes": [1, 1]})
    scene_info = {"dirty_and_empty": False, "floor_plan": f"FloorPlan{scene}", "random_seed": rng.randrange(10**9),
                  "scene_num": scene, "init_action": {"action": "TeleportFull", "horizon": 30, "rotateOnTeleport": True,
                                                      "rotation": 90, "x": 0.5, "y": 0.9, "z": -1.0},
                  "object_poses": [], "object_toggles": []}
    if split.startswith("tests"):
        data = {"scene": scene_info, "task_id": trial_id,
                "turk_annotations": {"anns": [{"task_desc": a["task_desc"], "high_descs": a["high_descs"]}
                                              for a in anns]}}
        return f"{split}/{trial_id}", data, []
    data = {
        "images": images,
        "pddl_params": {"mrecep_target": "", "object_sliced": False, "object_target": obj, "parent_target": recep,
                        "toggle_target": ""},
        "plan": {"high_pddl": [{"discrete_action": {"action": a, "args": args}, "high_idx": i,
                                "planner_action": {"action": "End" if a == "NoOp" else a}}
                               for i, (a, args) in enumerate(high)],
                 "low_actions": low},
        "scene": scene_info, "task_id": trial_id, "task_type": task_type, "turk_annotations": {"anns": anns},
    }
    return f"{split}/{task_type}-{obj}-None-{recep}-{scene}/{trial_id}", data, files


def write(root: str | Path, *, trials: int = 6, seed: int = 7, test_trials: int = 1) -> Path:
    """Write `trials` train/valid trials and `test_trials` language-only test trials under `<root>/json_2.1.0/`.

    Returns the `json_2.1.0` directory. Deterministic for a given seed.
    """
    rng = random.Random(seed)
    base = Path(root) / "json_2.1.0"
    splits = ["train"] * trials
    for i in range(trials):
        if i % 4 == 3:
            splits[i] = "valid_seen"
    splits += ["tests_seen"] * test_trials
    for index, split in enumerate(splits):
        rel, data, files = _trial(rng, index, split)
        trial_dir = base / rel
        trial_dir.mkdir(parents=True, exist_ok=True)
        (trial_dir / "traj_data.json").write_text(json.dumps(data, indent=1))
        if files:
            images_dir = trial_dir / "raw_images"
            images_dir.mkdir(exist_ok=True)
            for name, blob in files:
                (images_dir / name).write_bytes(blob)
    return base
