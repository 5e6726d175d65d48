"""Hand-built ROS 2 bags for the rosbag tests: chosen topics, rates and markers, written with rosbags."""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

T0 = 1_700_000_000_000_000_000
NS = 1_000_000_000


def typestore() -> Any:
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_HUMBLE)


def joint_state(ts: Any, t_ns: int, values: Iterable[float], names: list[str] | None = None) -> Any:
    values = np.asarray(list(values), dtype=np.float64)
    names = names or [f"j{i}" for i in range(len(values))]
    header = ts.types["std_msgs/msg/Header"](
        stamp=ts.types["builtin_interfaces/msg/Time"](sec=t_ns // NS, nanosec=t_ns % NS), frame_id="")
    return ts.types["sensor_msgs/msg/JointState"](header=header, name=names, position=values,
                                                  velocity=np.zeros_like(values), effort=np.zeros_like(values))


def compressed(ts: Any, t_ns: int, level: int, size: int = 16) -> Any:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), (level, level, level)).save(buf, format="JPEG", quality=95)
    header = ts.types["std_msgs/msg/Header"](
        stamp=ts.types["builtin_interfaces/msg/Time"](sec=t_ns // NS, nanosec=t_ns % NS), frame_id="cam")
    return ts.types["sensor_msgs/msg/CompressedImage"](header=header, format="jpeg",
                                                       data=np.frombuffer(buf.getvalue(), dtype=np.uint8))


def raw_image(ts: Any, t_ns: int, level: int, size: int = 8) -> Any:
    header = ts.types["std_msgs/msg/Header"](
        stamp=ts.types["builtin_interfaces/msg/Time"](sec=t_ns // NS, nanosec=t_ns % NS), frame_id="cam")
    data = np.full((size, size, 3), level, dtype=np.uint8)
    data[..., 2] = 0  # rgb8 with no blue: a bgr8 mix-up would show
    return ts.types["sensor_msgs/msg/Image"](header=header, height=size, width=size, encoding="rgb8",
                                             is_bigendian=0, step=size * 3, data=data.ravel())


def string(ts: Any, text: str) -> Any:
    return ts.types["std_msgs/msg/String"](data=text)


def write_bag(path: Path, messages: list[tuple[int, str, str, Any]], *, storage: str = "mcap",
              custom_data: dict[str, str] | None = None) -> Path:
    """messages: (time ns, topic, msgtype, message); written in time order as one rosbag2 directory."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    ts = typestore()
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    path.parent.mkdir(parents=True, exist_ok=True)
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        connections: dict[str, Any] = {}
        for _, topic, msgtype, _ in messages:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msgtype, typestore=ts)
        for key, value in (custom_data or {}).items():
            writer.set_custom_data(key, value)
        for t_ns, topic, msgtype, message in sorted(messages, key=lambda m: m[0]):
            writer.write(connections[topic], t_ns, ts.serialize_cdr(message, msgtype))
    return path


def multirate_bag(path: Path, *, seconds: float = 3.0, storage: str = "mcap", raw: bool = False,
                  instruction: str | None = "stack the cups") -> Path:
    """State at 10 Hz (value = time in s), action at 30 Hz (value = 100 + time), camera at 5 Hz
    (grey level = 15 * frame index + 10), instruction String at 1 Hz."""
    ts = typestore()
    msgs: list[tuple[int, str, str, Any]] = []
    for k in range(int(seconds * 10)):
        t = T0 + k * NS // 10
        msgs.append((t, "/joint_states", "sensor_msgs/msg/JointState", joint_state(ts, t, [k / 10, -k / 10])))
    for k in range(int(seconds * 30)):
        t = T0 + k * NS // 30
        msgs.append((t, "/joint_commands", "sensor_msgs/msg/JointState", joint_state(ts, t, [100 + k / 30])))
    for k in range(int(seconds * 5)):
        t = T0 + k * NS // 5
        if raw:
            msgs.append((t, "/camera/front/image_raw", "sensor_msgs/msg/Image", raw_image(ts, t, 15 * k + 10)))
        else:
            msgs.append((t, "/camera/front/image/compressed", "sensor_msgs/msg/CompressedImage",
                         compressed(ts, t, 15 * k + 10)))
    if instruction:
        for k in range(int(seconds)):
            msgs.append((T0 + k * NS, "/instruction", "std_msgs/msg/String", string(ts, instruction)))
    return write_bag(path, msgs, storage=storage)


def marker_bag(path: Path) -> Path:
    """6 s of JointState at 10 Hz with /episode markers: start at 0 s, stop at 2 s, start at 3 s (to the end)."""
    ts = typestore()
    msgs: list[tuple[int, str, str, Any]] = []
    for k in range(60):
        t = T0 + k * NS // 10
        msgs.append((t, "/joint_states", "sensor_msgs/msg/JointState", joint_state(ts, t, [k])))
        msgs.append((t + 1000, "/joint_commands", "sensor_msgs/msg/JointState", joint_state(ts, t + 1000, [k + 1])))
    for t_s, text in ((0.0, "start"), (2.0, "stop"), (3.0, "start")):
        msgs.append((T0 + int(t_s * NS), "/episode", "std_msgs/msg/String", string(ts, text)))
    msgs.append((T0, "/task", "std_msgs/msg/String", string(ts, "wipe the table")))
    return write_bag(path, msgs)


def depth_image(ts: Any, t_ns: int, millimetres: int, size: int = 8) -> Any:
    header = ts.types["std_msgs/msg/Header"](
        stamp=ts.types["builtin_interfaces/msg/Time"](sec=t_ns // NS, nanosec=t_ns % NS), frame_id="depth")
    data = np.full((size, size), millimetres, dtype="<u2")
    return ts.types["sensor_msgs/msg/Image"](header=header, height=size, width=size, encoding="16UC1",
                                             is_bigendian=0, step=size * 2,
                                             data=np.frombuffer(data.tobytes(), dtype=np.uint8))


def depth_bag(path: Path) -> Path:
    """JointState at 10 Hz and a 16-bit depth camera (value = 1000 + 10 * k mm) at 10 Hz, for 1 s."""
    ts = typestore()
    msgs: list[tuple[int, str, str, Any]] = []
    for k in range(10):
        t = T0 + k * NS // 10
        msgs.append((t, "/joint_states", "sensor_msgs/msg/JointState", joint_state(ts, t, [k])))
        msgs.append((t, "/camera/depth/image_raw", "sensor_msgs/msg/Image", depth_image(ts, t, 1000 + 10 * k)))
    return write_bag(path, msgs)
