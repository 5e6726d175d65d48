"""Open a ROS 2 bag without ROS: a rosbag2 directory (metadata.yaml + .mcap/.db3) or a bare .mcap/.db3 file.

Decoding uses `rosbags` (pure Python CDR). Storage files are opened directly rather than through the
directory reader, which drops every message when the QoS profiles in an old (v4) metadata.yaml differ
from those in the storage file (the real rosbag2 talker bags do). Types come from the definitions
stored in the bag (MCAP schemas), else from the typestore of the bag's ROS distro (default humble).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

STORAGE_SUFFIXES = (".mcap", ".db3")
DISTROS = ("humble", "foxy", "galactic", "iron", "jazzy", "kilted", "dashing", "eloquent")


class BagError(ValueError):
    """A bag that cannot be opened or decoded; the message names the bag and the reason."""


@dataclass
class BagInfo:
    """What a bag is made of, before reading any message."""

    path: Path
    files: list[Path]
    storage: str
    metadata: dict[str, Any] = field(default_factory=dict)
    compression: str | None = None

    @property
    def custom_data(self) -> dict[str, Any]:
        value = self.metadata.get("custom_data") or {}
        return value if isinstance(value, dict) else {}

    @property
    def ros_distro(self) -> str | None:
        value = self.metadata.get("ros_distro")
        return str(value) if value else None


def is_bag(path: Path) -> bool:
    """A rosbag2 directory or a bare storage file (cheap, never raises)."""
    try:
        if path.is_dir():
            return (path / "metadata.yaml").is_file()
        return path.is_file() and path.suffix in STORAGE_SUFFIXES
    except OSError:
        return False


def has_bag(uri: str, *, max_depth: int = 3) -> bool:
    """A bag at `uri` or at most `max_depth` directories below it (cheap, for probes)."""
    path = Path(uri)
    if is_bag(path):
        return True
    level = [path] if path.is_dir() else []
    for _ in range(max_depth):
        nxt: list[Path] = []
        for directory in level:
            try:
                entries = sorted(directory.iterdir())
            except OSError:
                continue
            if any(is_bag(e) for e in entries):
                return True
            nxt.extend(e for e in entries if e.is_dir())
        level = nxt[:200]
    return False


def find_bags(uri: str) -> list[Path]:
    """The bags of a source: the bag itself, or every bag below a directory (one episode set per bag)."""
    path = Path(uri)
    if is_bag(path):
        return [path]
    if not path.is_dir():
        return []
    bags: list[Path] = []
    for candidate in sorted(path.rglob("*")):
        if any(parent in bags for parent in candidate.parents):
            continue
        bag_dir = candidate.is_dir() and (candidate / "metadata.yaml").is_file()
        bare = (candidate.is_file() and candidate.suffix in STORAGE_SUFFIXES
                and not (candidate.parent / "metadata.yaml").is_file())
        if bag_dir or bare:
            bags.append(candidate)
    return bags


def bag_info(path: Path) -> BagInfo:
    """Storage files and metadata of a bag.

    Raises:
        BagError: metadata.yaml unreadable, storage files missing, or an unsupported compression.
    """
    if path.is_file():
        return BagInfo(path=path, files=[path], storage="mcap" if path.suffix == ".mcap" else "sqlite3")
    meta_path = path / "metadata.yaml"
    try:
        raw = yaml.safe_load(meta_path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise BagError(f"{meta_path} cannot be read: {exc}") from None
    info = raw.get("rosbag2_bagfile_information") if isinstance(raw, dict) else None
    if not isinstance(info, dict):
        raise BagError(f"{meta_path} has no rosbag2_bagfile_information section; is this a rosbag2 bag?")
    names = info.get("relative_file_paths") or [p.name for p in sorted(path.iterdir())
                                                  if p.suffix in STORAGE_SUFFIXES]
    files = [path / Path(str(n)).name for n in names]
    missing = [str(f) for f in files if not f.exists()]
    if missing or not files:
        raise BagError(f"bag {path} lists storage file(s) that are missing: {missing or '(none listed)'}")
    mode = str(info.get("compression_mode") or "").lower()
    compression = mode if mode not in ("", "none") else None
    if compression == "file":
        raise BagError(f"bag {path} is compressed per file ({info.get('compression_format')}); decompress it first "
                       "with `ros2 bag decompress` or `zstd -d` on its storage files")
    return BagInfo(path=path, files=files, storage=str(info.get("storage_identifier") or "mcap"), metadata=info,
                   compression=compression)


def mcap_metadata(files: list[Path]) -> dict[str, str]:
    """Key/value metadata records of MCAP files (where a recorder may keep the instruction)."""
    from mcap.reader import make_reader

    values: dict[str, str] = {}
    for file in files:
        if file.suffix != ".mcap":
            continue
        try:
            with file.open("rb") as fh:
                for record in make_reader(fh).iter_metadata():
                    values.update(record.metadata)
        except Exception:
            continue
    return values


class BagReader:
    """Messages of chosen topics, in time order, deserialised; use as a context manager."""

    def __init__(self, info: BagInfo, *, distro: str | None = None) -> None:
        self.info = info
        self.distro = distro or info.ros_distro or "humble"
        self._reader: Any = None

    def __enter__(self) -> BagReader:
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore

        store = getattr(Stores, f"ROS2_{self.distro.upper()}", Stores.ROS2_HUMBLE)
        try:
            self._reader = AnyReader(list(self.info.files), default_typestore=get_typestore(store))
            self._reader.open()
        except Exception as exc:
            raise BagError(f"bag {self.info.path} cannot be opened: {exc}") from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.close()

    def topics(self) -> dict[str, str]:
        return {c.topic: c.msgtype for c in self._reader.connections}

    def counts(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for c in self._reader.connections:
            totals[c.topic] = totals.get(c.topic, 0) + int(c.msgcount)
        return totals

    @property
    def start_ns(self) -> int:
        return int(self._reader.start_time)

    @property
    def end_ns(self) -> int:
        return int(self._reader.end_time)

    def messages(self, topics: set[str]) -> Iterator[tuple[str, int, Any, bytes]]:
        """(topic, log time ns, message, raw CDR) for every message of `topics`, in time order.

        Raises:
            BagError: a message that does not decode as its type (e.g. recorded with another ROS distro).
        """
        import zstandard

        connections = [c for c in self._reader.connections if c.topic in topics]
        if not connections:
            return
        decompress = zstandard.ZstdDecompressor().decompress if self.info.compression == "message" else None
        for connection, timestamp, raw in self._reader.messages(connections=connections):
            data = decompress(raw) if decompress else raw
            try:
                message = self._reader.deserialize(data, connection.msgtype)
            except Exception as exc:
                raise BagError(f"bag {self.info.path}: a {connection.msgtype} message on {connection.topic} at "
                               f"{timestamp} ns does not decode ({exc}); if the bag was recorded with another "
                               f"ROS distro than {self.distro}, pass ros_distro=<distro>") from None
            yield connection.topic, int(timestamp), message, data
