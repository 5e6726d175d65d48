"""A procedurally rendered tabletop world: deterministic demonstrations with known ground truth.

Each `DemoEpisode` is a pick-and-place: a robot moves its gripper to a target object and carries it to a
receptacle, on a table with distractor objects (clutter), under some lighting, phrased in some style.
The world is skewed on purpose, like real robot data: common objects dominate, a long tail of rare
objects, a few near-duplicate episodes, some failures, some missing instructions, and a small
"deployment" set with novel objects in an unseen kitchen. Ground truth (`truth`) rides along in the
metadata so analytics can be checked against it.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance

IMAGE_SIZE = 96
WRIST_SIZE = 64

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (210, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 210), "yellow": (230, 200, 40),
    "purple": (140, 60, 170), "orange": (240, 130, 30), "white": (235, 235, 235), "black": (30, 30, 30),
    "pink": (240, 120, 180), "teal": (30, 160, 160),
}
SHAPES = ("cube", "ball", "cylinder", "triangle", "star", "ring", "banana", "screwdriver")
COMMON_OBJECTS = [("red", "cube"), ("blue", "cube"), ("green", "ball"), ("yellow", "ball"), ("red", "ball"),
                  ("blue", "cylinder"), ("green", "cube")]
RARE_OBJECTS = [("purple", "triangle"), ("orange", "cylinder"), ("yellow", "banana"), ("black", "screwdriver"),
                ("white", "cube")]
NOVEL_OBJECTS = [("pink", "star"), ("teal", "ring"), ("orange", "star"), ("teal", "banana")]
RECEPTACLES = {"bowl": (150, 150, 150), "plate": (245, 245, 245), "box": (150, 100, 60)}
SCENES = {"lab_table": (200, 190, 170), "white_desk": (225, 225, 220), "wood_bench": (160, 120, 80)}
DEPLOY_SCENE = ("kitchen_counter", (120, 130, 140))
LIGHTING = {"normal": 1.0, "bright": 1.35, "dim": 0.6}
STYLES = ("imperative", "question", "deictic", "colloquial")


@dataclass(frozen=True)
class Robot:
    name: str
    kind: str
    action_kind: str
    action_names: tuple[str, ...]
    state_names: tuple[str, ...]
    hz: float
    cameras: tuple[str, ...]
    dataset: str


ROBOTS: tuple[Robot, ...] = (
    Robot("franka", "arm", "eef_delta", ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"),
          ("x", "y", "z", "roll", "pitch", "yaw", "gripper"), 10.0, ("front", "wrist"), "tabletop_franka"),
    Robot("widowx", "arm", "eef_delta", ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"),
          ("x", "y", "z", "roll", "pitch", "yaw", "gripper"), 5.0, ("front",), "tabletop_widowx"),
    Robot("so101", "arm", "joint_pos",
          ("shoulder_pan.pos", "shoulder_lift.pos", "elbow_flex.pos", "wrist_flex.pos", "wrist_roll.pos",
           "gripper.pos"),
          ("shoulder_pan.pos", "shoulder_lift.pos", "elbow_flex.pos", "wrist_flex.pos", "wrist_roll.pos",
           "gripper.pos"), 30.0, ("front", "wrist"), "tabletop_so101"),
    Robot("aloha", "bimanual", "joint_pos",
          tuple([f"left_j{i}" for i in range(6)] + ["left_gripper"] + [f"right_j{i}" for i in range(6)]
                + ["right_gripper"]),
          tuple([f"left_j{i}" for i in range(6)] + ["left_gripper"] + [f"right_j{i}" for i in range(6)]
                + ["right_gripper"]), 50.0, ("cam_high", "cam_left_wrist"), "tabletop_aloha"),
)
ROBOT_WEIGHTS = (0.45, 0.25, 0.2, 0.1)


@dataclass
class DemoEpisode:
    """One generated demonstration, before it is written in any source format."""

    key: str
    dataset: str
    robot: Robot
    instruction: str | None
    instructions_alt: list[str]
    style: str
    target: tuple[str, str]
    receptacle: str
    distractors: list[tuple[str, str]]
    scene: str
    lighting: str
    success: bool
    split: str
    actions: np.ndarray  # (T, action_dim) float32
    states: np.ndarray  # (T, state_dim) float32
    frames: dict[str, list[bytes]]  # camera -> JPEG bytes per step
    segments: list[tuple[int, int, str]]
    truth: dict[str, Any] = field(default_factory=dict)

    @property
    def n_steps(self) -> int:
        return int(self.actions.shape[0])


def object_name(obj: tuple[str, str]) -> str:
    return f"{obj[0]} {obj[1]}"


def phrase(style: str, target: tuple[str, str], receptacle: str, anchor: tuple[str, str] | None,
           rng: np.random.Generator) -> str:
    """An instruction in one of four styles practitioners see in the wild."""
    name = object_name(target)
    verb = rng.choice(["put", "place", "move"])
    prep = "on" if receptacle == "plate" else "in"
    if style == "imperative":
        return f"{verb} the {name} {prep} the {receptacle}"
    if style == "question":
        return str(rng.choice([f"can you {verb} the {name} into the {receptacle}?",
                               f"could you pick up the {name} and drop it in the {receptacle}?"]))
    if style == "deictic":
        where = rng.choice(["left of", "right of", "next to"])
        ref = object_name(anchor) if anchor else receptacle
        return f"{verb} the {target[1]} {where} the {ref} into the {receptacle}"
    return str(rng.choice([f"grab that {name} and chuck it in the {receptacle}",
                           f"yo, {name} goes {prep} the {receptacle} pls",
                           f"just stick the {name} in the {receptacle}"]))


def _draw_object(draw: ImageDraw.ImageDraw, shape: str, colour: tuple[int, int, int], cx: float, cy: float,
                 r: float) -> None:
    if shape == "cube":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour, outline=(0, 0, 0))
    elif shape == "ball":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour, outline=(0, 0, 0))
    elif shape == "cylinder":
        draw.rectangle([cx - r * 0.7, cy - r, cx + r * 0.7, cy + r], fill=colour)
        draw.ellipse([cx - r * 0.7, cy - r - 2, cx + r * 0.7, cy - r + 2], fill=(255, 255, 255))
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour, outline=(0, 0, 0))
    elif shape == "star":
        pts = []
        for i in range(10):
            rad = r if i % 2 == 0 else r * 0.45
            ang = math.pi / 2 + i * math.pi / 5
            pts.append((cx + rad * math.cos(ang), cy - rad * math.sin(ang)))
        draw.polygon(pts, fill=colour, outline=(0, 0, 0))
    elif shape == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=colour, width=max(2, int(r / 2.5)))
    elif shape == "banana":
        draw.arc([cx - r, cy - r, cx + r, cy + r], 20, 160, fill=colour, width=max(3, int(r / 2)))
    elif shape == "screwdriver":
        draw.rectangle([cx - r, cy - 1.5, cx + r * 0.2, cy + 1.5], fill=(180, 180, 190))
        draw.rectangle([cx + r * 0.2, cy - 3, cx + r, cy + 3], fill=colour)


def render(scene_colour: tuple[int, int, int], lighting: float, objects: list[tuple[tuple[str, str], float, float]],
           receptacle: tuple[str, float, float], gripper: tuple[float, float, float], size: int) -> Image.Image:
    """Top-down view of the table: receptacle, objects and the gripper (its opening drawn as a gap)."""
    scale = size / IMAGE_SIZE
    img = Image.new("RGB", (size, size), scene_colour)
    draw = ImageDraw.Draw(img)
    rname, rx, ry = receptacle
    rr = 13 * scale
    draw.ellipse([rx * scale - rr, ry * scale - rr, rx * scale + rr, ry * scale + rr], fill=RECEPTACLES[rname],
                 outline=(60, 60, 60), width=2)
    for (colour, shape), x, y in objects:
        _draw_object(draw, shape, COLOURS[colour], x * scale, y * scale, 6 * scale)
    gx, gy, opening = gripper
    g = 5 * scale
    gap = (1 + 3 * opening) * scale
    draw.rectangle([gx * scale - g, gy * scale - gap - 2 * scale, gx * scale + g, gy * scale - gap],
                   fill=(50, 50, 55))
    draw.rectangle([gx * scale - g, gy * scale + gap, gx * scale + g, gy * scale + gap + 2 * scale],
                   fill=(50, 50, 55))
    if lighting != 1.0:
        img = ImageEnhance.Brightness(img).enhance(lighting)
    return img


def jpeg(img: Image.Image, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _placements(rng: np.random.Generator, n: int) -> list[tuple[float, float]]:
    spots: list[tuple[float, float]] = []
    while len(spots) < n:
        x, y = rng.uniform(12, 84), rng.uniform(12, 84)
        if all((x - a) ** 2 + (y - b) ** 2 > 200 for a, b in spots):
            spots.append((float(x), float(y)))
    return spots


def generate_episode(rng: np.random.Generator, *, index: int, robot: Robot, target: tuple[str, str],
                     scene: tuple[str, tuple[int, int, int]], dataset: str, split: str = "train",
                     fail: bool = False, unlabelled: bool = False, clutter: int | None = None,
                     lighting: str | None = None) -> DemoEpisode:
    """One pick-and-place demonstration, rendered frame by frame."""
    clutter = int(rng.choice([0, 1, 2, 3, 5, 7], p=[0.2, 0.25, 0.2, 0.15, 0.12, 0.08])) if clutter is None else clutter
    lighting = lighting or str(rng.choice(list(LIGHTING), p=[0.7, 0.15, 0.15]))
    receptacle = str(rng.choice(list(RECEPTACLES)))
    pool = [o for o in COMMON_OBJECTS + RARE_OBJECTS if o != target]
    distractors = [pool[int(i)] for i in rng.choice(len(pool), size=clutter, replace=False)]
    spots = _placements(rng, clutter + 3)
    (tx, ty), (rx, ry), (sx, sy) = spots[0], spots[1], spots[2]
    others = [(d, *spots[3 + i]) for i, d in enumerate(distractors)]
    style = str(rng.choice(STYLES, p=[0.55, 0.15, 0.15, 0.15]))
    anchor = distractors[0] if distractors else None
    instruction = phrase(style, target, receptacle, anchor, rng)
    alts = [phrase(s, target, receptacle, anchor, rng) for s in STYLES if s != style][: int(rng.integers(0, 3))]

    # waypoints: start -> above target -> grasp -> receptacle -> release
    reach = int(rng.integers(8, 14))
    carry = int(rng.integers(8, 14))
    settle = 3
    path = [(sx, sy, 1.0)]
    for t in range(1, reach + 1):
        a = t / reach
        path.append((sx + (tx - sx) * a, sy + (ty - sy) * a, 1.0))
    path += [(tx, ty, 0.0)] * 2
    end_x, end_y = (rx, ry) if not fail else (tx + (rx - tx) * 0.45, ty + (ry - ty) * 0.45)
    for t in range(1, carry + 1):
        a = t / carry
        path.append((tx + (end_x - tx) * a, ty + (end_y - ty) * a, 0.0))
    path += [(end_x, end_y, 1.0)] * settle
    jitter = rng.normal(0, 0.25, size=(len(path), 2))
    xy = np.array([(p[0], p[1]) for p in path]) + jitter
    grip = np.array([p[2] for p in path])
    n = len(path)

    scene_name, scene_colour = scene
    light = LIGHTING[lighting]
    cams = {c: [] for c in robot.cameras}
    held_until = reach + 2
    for t in range(n):
        gx, gy = xy[t]
        carrying = t >= held_until and (not fail or t < n - settle - 2)
        obj_xy = (gx, gy) if carrying else ((tx, ty) if t < held_until else (xy[-1][0], xy[-1][1]))
        if fail and t >= n - settle - 2:
            obj_xy = (end_x + 4, end_y + 6)
        objects = [*others, (target, *obj_xy)]
        front = render(scene_colour, light, objects, (receptacle, rx, ry), (gx, gy, grip[t]), IMAGE_SIZE)
        for cam in robot.cameras:
            if cam in ("front", "cam_high"):
                cams[cam].append(jpeg(front))
            else:
                half = 24
                box = (int(gx - half), int(gy - half), int(gx + half), int(gy + half))
                cams[cam].append(jpeg(front.crop(box).resize((WRIST_SIZE, WRIST_SIZE))))

    actions, states = _kinematics(robot, xy, grip, rng)
    segments = [(0, reach, f"reach the {object_name(target)}"), (reach, reach + 2, f"grasp the {object_name(target)}"),
                (reach + 2, n, f"carry it to the {receptacle}")]
    truth = {"target": object_name(target), "target_shape": target[1], "target_colour": target[0],
             "receptacle": receptacle, "clutter": clutter, "lighting": lighting, "style": style,
             "rare": target in RARE_OBJECTS, "novel": target in NOVEL_OBJECTS, "scene": scene_name}
    return DemoEpisode(
        key=f"{dataset}/episode_{index:06d}", dataset=dataset, robot=robot,
        instruction=None if unlabelled else instruction, instructions_alt=[] if unlabelled else alts, style=style,
        target=target, receptacle=receptacle, distractors=distractors, scene=scene_name, lighting=lighting,
        success=not fail, split=split, actions=actions, states=states, frames=cams, segments=segments, truth=truth,
    )


def _kinematics(robot: Robot, xy: np.ndarray, grip: np.ndarray,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Actions and states in the robot's own space, consistent with the drawn gripper path."""
    n = len(xy)
    pos = np.zeros((n, 3))
    pos[:, 0] = (xy[:, 0] - 48) / 100
    pos[:, 1] = (xy[:, 1] - 48) / 100
    pos[:, 2] = 0.05 + 0.1 * grip
    if robot.action_kind == "eef_delta":
        state = np.zeros((n, 7))
        state[:, :3] = pos
        state[:, 3:6] = rng.normal(0, 0.01, size=(n, 3))
        state[:, 6] = grip
        action = np.zeros((n, 7))
        action[1:, :6] = np.diff(state[:, :6], axis=0)
        action[:, 6] = grip
        return action.astype(np.float32), state.astype(np.float32)
    dim = len(robot.action_names)
    arms = 2 if robot.kind == "bimanual" else 1
    per = dim // arms
    state = np.zeros((n, dim))
    for arm in range(arms):
        base = arm * per
        sign = 1 if arm == 0 else -1
        state[:, base + 0] = np.arctan2(pos[:, 1], pos[:, 0] + 0.6) * sign
        state[:, base + 1] = 0.4 + pos[:, 2] * 2
        state[:, base + 2] = 1.0 - np.hypot(pos[:, 0], pos[:, 1])
        for j in range(3, per - 1):
            state[:, base + j] = rng.normal(0, 0.02, size=n) + 0.1 * j
        state[:, base + per - 1] = grip
    action = np.vstack([state[1:], state[-1:]])
    return action.astype(np.float32), state.astype(np.float32)


def build_world(n_episodes: int, *, seed: int = 0, deploy_fraction: float = 0.06,
                duplicate_fraction: float = 0.04, fail_fraction: float = 0.08,
                unlabelled_fraction: float = 0.05) -> list[DemoEpisode]:
    """The whole demo world: `n_episodes` training episodes (+ duplicates) and a deployment set."""
    rng = np.random.default_rng(seed)
    n_deploy = max(2, int(n_episodes * deploy_fraction))
    n_train = max(1, n_episodes - n_deploy)
    episodes: list[DemoEpisode] = []
    counters: dict[str, int] = {}
    scene_names = list(SCENES)
    for _ in range(n_train):
        robot = ROBOTS[int(rng.choice(len(ROBOTS), p=ROBOT_WEIGHTS))]
        rare = rng.random() < 0.12
        pool = RARE_OBJECTS if rare else COMMON_OBJECTS
        weights = np.array([1.0 / (i + 1) for i in range(len(pool))])
        target = pool[int(rng.choice(len(pool), p=weights / weights.sum()))]
        scene_name = scene_names[int(rng.choice(len(scene_names), p=[0.6, 0.3, 0.1]))]
        idx = counters.setdefault(robot.dataset, 0)
        counters[robot.dataset] += 1
        ep = generate_episode(rng, index=idx, robot=robot, target=target, scene=(scene_name, SCENES[scene_name]),
                              dataset=robot.dataset, split="train" if rng.random() < 0.9 else "val",
                              fail=rng.random() < fail_fraction, unlabelled=rng.random() < unlabelled_fraction)
        episodes.append(ep)
    n_dupes = int(n_train * duplicate_fraction)
    for j in range(n_dupes):
        original = episodes[int(rng.integers(0, n_train))]
        idx = counters[original.dataset]
        counters[original.dataset] += 1
        noise = rng.normal(0, 1e-4, size=original.actions.shape).astype(np.float32)
        dup = DemoEpisode(**{**original.__dict__, "key": f"{original.dataset}/episode_{idx:06d}",
                             "actions": original.actions + noise,
                             "truth": {**original.truth, "duplicate_of": original.key}})
        episodes.append(dup)
        del j
    robot = ROBOTS[0]
    for i in range(n_deploy):
        target = NOVEL_OBJECTS[int(rng.integers(0, len(NOVEL_OBJECTS)))]
        ep = generate_episode(rng, index=i, robot=robot, target=target, scene=DEPLOY_SCENE, dataset="deploy_kitchen",
                              split="deploy", clutter=int(rng.integers(3, 8)), lighting="dim")
        episodes.append(ep)
    return episodes
