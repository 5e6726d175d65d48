"""Write demo episodes as real rosbag2 bags: JointState + CompressedImage + String topics at different rates.

One bag directory per episode (`<root>/<key>/metadata.yaml` + storage file), written with `rosbags`
(CDR, no ROS install). Topics, chosen so the `rosbag` connector's default mapping reads them unaided:

- `/joint_states` (sensor_msgs/JointState): the state, at the robot's rate;
- `/joint_commands` (sensor_msgs/JointState): the action, at the robot's rate, offset by a few ms;
- `/camera/<cam>/image/compressed` (sensor_msgs/CompressedImage, JPEG passed through): every other step;
- `/instruction` (std_msgs/String): once at the start, then every 2 s (the instruction is also in the
  bag's `custom_data`).

    from curate.demo.world import build_world
    from curate.demo import write_rosbag
    write_rosbag.write(build_world(10, seed=7), "/tmp/bags")                       # MCAP storage
    write_rosbag.write(build_world(10, seed=7), "/tmp/bags_db3", storage="sqlite3")
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from curate.demo.world import DemoEpisode

Storage = Literal["mcap", "sqlite3"]
START_NS = 1_700_000_000_000_000_000
COMMAND_OFFSET_NS = 3_000_000
INSTRUCTION_PERIOD_S = 2.0


def _stamp(ts: Any, t_ns: int) -> Any:
    return ts.types["builtin_interfaces/msg/Time"](sec=t_ns // 1_000_000_000, nanosec=t_ns % 1_000_000_000)


def _header(ts: Any, t_ns: int, frame: str) -> Any:
    return ts.types["std_msgs/msg/Header"](stamp=_stamp(ts, t_ns), frame_id=frame)


def _joint_state(ts: Any, t_ns: int, names: Sequence[str], values: np.ndarray) -> Any:
    zeros = np.zeros(len(names), dtype=np.float64)
    return ts.types["sensor_msgs/msg/JointState"](header=_header(ts, t_ns, "base_link"), name=list(names),
                                                  position=np.asarray(values, dtype=np.float64), velocity=zeros,
                                                  effort=zeros)


def write_episode(demo: DemoEpisode, path: Path, *, storage: Storage = "mcap", camera_every: int = 2,
                  start_ns: int = START_NS, extra_instructions: Sequence[tuple[float, str]] = ()) -> Path:
    """One demo as one bag directory at `path` (must not exist); returns `path`."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_HUMBLE)
    hz = float(demo.robot.hz)
    period_ns = round(1e9 / hz)
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    path.parent.mkdir(parents=True, exist_ok=True)
    messages: list[tuple[int, str, Any, str]] = []
    for t in range(demo.n_steps):
        t_ns = start_ns + t * period_ns
        messages.append((t_ns, "/joint_states", _joint_state(ts, t_ns, demo.robot.state_names, demo.states[t]),
                         "sensor_msgs/msg/JointState"))
        messages.append((t_ns + COMMAND_OFFSET_NS, "/joint_commands",
                         _joint_state(ts, t_ns, demo.robot.action_names, demo.actions[t]),
                         "sensor_msgs/msg/JointState"))
        if t % camera_every == 0:
            for cam in demo.robot.cameras:
                msg = ts.types["sensor_msgs/msg/CompressedImage"](
                    header=_header(ts, t_ns, cam), format="jpeg",
                    data=np.frombuffer(demo.frames[cam][t], dtype=np.uint8))
                messages.append((t_ns + 1_000_000, f"/camera/{cam}/image/compressed", msg,
                                 "sensor_msgs/msg/CompressedImage"))
    duration_s = demo.n_steps / hz
    texts = [(k * INSTRUCTION_PERIOD_S, demo.instruction) for k in range(int(duration_s // INSTRUCTION_PERIOD_S) + 1)
             if demo.instruction]
    for offset_s, text in [*texts, *extra_instructions]:
        t_ns = start_ns + int(offset_s * 1e9)
        messages.append((t_ns, "/instruction", ts.types["std_msgs/msg/String"](data=text), "std_msgs/msg/String"))
    messages.sort(key=lambda m: m[0])
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        connections: dict[str, Any] = {}
        for _, topic, _, msgtype in messages:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msgtype, typestore=ts)
        if demo.instruction:
            writer.set_custom_data("instruction", demo.instruction)
        for t_ns, topic, msg, msgtype in messages:
            writer.write(connections[topic], t_ns, ts.serialize_cdr(msg, msgtype))
    return path


def write(demo_episodes: Sequence[DemoEpisode], root: str | Path, *, storage: Storage = "mcap") -> Path:
    """Write each demo as a bag `<root>/<key>/` and return `root` (a directory of bags: one episode each)."""
    if not demo_episodes:
        raise ValueError("no demo episodes to write")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for demo in demo_episodes:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", demo.key).strip("_")
        write_episode(demo, root / name, storage=storage)
    return root
