"""Seeded writers of teleop test fixtures: LeRobot, ALOHA, robomimic/LIBERO/robosuite HDF5, ROS 2 bags.

Everything is generated from the demo world (`curate.demo.world`) with a fixed seed, so the same call
always writes the same bytes' worth of content. Importing this module also registers these formats as
foreign samples for the conformance suite, so every connector's probe is checked against them.

Run `python -m tests.fixtures_teleop <dir>` to write every fixture to a directory for poking by hand.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from curate.demo import write_hdf5, write_lerobot, write_rosbag
from curate.demo.world import DemoEpisode, build_world

SEED = 11


@lru_cache(maxsize=4)
def world(n: int = 16, seed: int = SEED) -> tuple[DemoEpisode, ...]:
    return tuple(build_world(n, seed=seed))


def demos_of(robot: str, count: int) -> list[DemoEpisode]:
    """`count` demo episodes of one robot (the world is grown until it has enough)."""
    n = 16
    while True:
        picked = [d for d in world(n) if d.robot.name == robot]
        if len(picked) >= count:
            return picked[:count]
        n *= 2


# -- LeRobot ----------------------------------------------------------------------------------------------


def lerobot_v3(tmp: Path, *, episodes: int = 3, visual: str = "video", codec: str = "h264") -> Path:
    return write_lerobot.write(demos_of("so101", episodes), tmp / "so101_v3", visual=visual, codec=codec)


def lerobot_v21(tmp: Path, *, episodes: int = 3, codec: str = "h264") -> Path:
    return write_lerobot.write(demos_of("franka", episodes), tmp / "franka_v21", version="v2.1", codec=codec)


# -- HDF5 -------------------------------------------------------------------------------------------------


def aloha(tmp: Path, *, episodes: int = 3, images: str = "jpeg") -> Path:
    return write_hdf5.write(demos_of("aloha", episodes), tmp / "aloha", images=images)


def robomimic_file(path: Path, *, demos: int = 3, libero: bool = False, images: bool = True,
                   masks: bool = True) -> Path:
    """A robomimic (or LIBERO) post-processed file: data/demo_i with obs/next_obs, env_args, masks."""
    import h5py

    rng = np.random.default_rng(SEED)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as h5:
        data = h5.create_group("data")
        env_args = {"env_name": "Lift", "type": 1, "env_kwargs": {"robots": ["Panda"], "control_freq": 20,
                                                                  "controller_configs": {"type": "OSC_POSE"}}}
        data.attrs["env_args"] = json.dumps(env_args)
        total = 0
        names = []
        for i in range(demos):
            n = 12 + 3 * i
            total += n
            demo = data.create_group(f"demo_{i}")
            demo.attrs["num_samples"] = n
            demo.create_dataset("actions", data=rng.uniform(-1, 1, (n, 7)))
            demo.create_dataset("states", data=rng.normal(size=(n, 10)))
            demo.create_dataset("rewards", data=np.r_[np.zeros(n - 1), 1.0])
            demo.create_dataset("dones", data=np.r_[np.zeros(n - 1), 1.0].astype(np.int64))
            for group_name in ("obs", "next_obs"):
                obs = demo.create_group(group_name)
                if libero:
                    obs.create_dataset("joint_states", data=rng.normal(size=(n, 7)))
                    obs.create_dataset("gripper_states", data=rng.normal(size=(n, 2)))
                    obs.create_dataset("ee_pos", data=rng.normal(size=(n, 3)))
                else:
                    obs.create_dataset("robot0_eef_pos", data=rng.normal(size=(n, 3)))
                    obs.create_dataset("robot0_eef_quat", data=rng.normal(size=(n, 4)))
                    obs.create_dataset("robot0_gripper_qpos", data=rng.normal(size=(n, 2)))
                if images:
                    # top rows red, bottom rows blue: LIBERO stores it upside down (blue on top)
                    img = np.zeros((n, 16, 16, 3), dtype=np.uint8)
                    img[:, :8, :, 0] = 255
                    img[:, 8:, :, 2] = 255
                    if libero:
                        img = img[:, ::-1, ::-1]
                    obs.create_dataset("agentview_rgb" if libero else "agentview_image", data=img)
            names.append(f"demo_{i}")
        data.attrs["total"] = total
        if libero:
            data.attrs["problem_info"] = json.dumps({"problem_name": "libero_tabletop_manipulation",
                                                     "domain_name": "robosuite",
                                                     "language_instruction": "put the bowl on the plate"})
            data.attrs["bddl_file_name"] = "put_the_bowl_on_the_plate.bddl"
        if masks:
            mask = h5.create_group("mask")
            mask.create_dataset("train", data=np.array(names[:-1], dtype="S"))
            mask.create_dataset("valid", data=np.array(names[-1:], dtype="S"))
    return path


def robosuite_raw(path: Path, *, demos: int = 2, with_actions: bool = True) -> Path:
    """A robosuite raw demo.hdf5: 1.x (states + actions) or 0.1 (no actions; joint velocities + gripper)."""
    import h5py

    rng = np.random.default_rng(SEED)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as h5:
        data = h5.create_group("data")
        data.attrs["env"] = "Lift" if with_actions else "SawyerLift"
        data.attrs["repository_version"] = "1.0.0" if with_actions else "0.1.0"
        for i in range(1, demos + 1):
            demo = data.create_group(f"demo_{i}")
            demo.attrs["model_file"] = "<mujoco/>"
            n = 10 + i
            demo.create_dataset("states", data=rng.normal(size=(n, 32)))
            if with_actions:
                demo.create_dataset("actions", data=rng.uniform(-1, 1, (n, 7)))
            else:
                demo.create_dataset("joint_velocities", data=rng.normal(size=(n, 7)))
                demo.create_dataset("gripper_actuations", data=rng.normal(size=(n, 1)))
    return path


# -- ROS 2 bags -------------------------------------------------------------------------------------------


def rosbags(tmp: Path, *, episodes: int = 3, storage: str = "mcap") -> Path:
    return write_rosbag.write(demos_of("franka", episodes), tmp / f"bags_{storage}", storage=storage)


def _register_foreign() -> None:
    """Make the conformance suite check every connector's probe against these formats too."""
    try:
        from tests.connectors.conformance import FOREIGN_WRITERS
    except ImportError:  # the conformance suite is optional for these writers
        return
    FOREIGN_WRITERS.setdefault("lerobot", lambda tmp: str(lerobot_v3(tmp, episodes=1)))
    FOREIGN_WRITERS.setdefault("aloha", lambda tmp: str(aloha(tmp, episodes=1)))
    FOREIGN_WRITERS.setdefault("robomimic", lambda tmp: str(robomimic_file(tmp / "low_dim.hdf5", demos=1)))
    FOREIGN_WRITERS.setdefault("rosbag", lambda tmp: str(rosbags(tmp, episodes=1)))


_register_foreign()
