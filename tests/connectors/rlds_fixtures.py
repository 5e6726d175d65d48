"""Seeded RLDS fixtures written with our own TFDS-compatible writer (shared by the RLDS and ingest tests)."""

from __future__ import annotations

from pathlib import Path

from connectors.rlds.writer import write_episodes
from connectors.tfrecord import read_records
from tests.helpers import make_episode

FIXTURE_NAME = "curate_fixture"


def write_rlds_fixture(root: Path, *, n: int = 6, n_steps: int = 5, seed: int = 0, per_shard: int = 2,
                       name: str = FIXTURE_NAME) -> Path:
    """`n` seeded episodes (2 cameras, 3-dim action, 2-dim state) as `<root>/<name>/1.0.0`, train/val splits."""
    episodes = [make_episode(i, dataset=name, n_steps=n_steps, cameras=("front", "wrist"), seed=seed,
                             split="val" if i % 3 == 2 else "train", instructions_alt=[f"alt {i}"],
                             task_type="pick", scene=f"scene_{i % 2}", objects=["cup"], success=i % 2 == 0)
                for i in range(n)]
    out = root / name / "1.0.0"
    write_episodes(episodes, out, name=name, episodes_per_shard=per_shard)
    return out


def shards(dataset_dir: Path) -> list[Path]:
    return sorted(dataset_dir.glob("*.tfrecord-*"))


def record_offsets(path: Path) -> list[tuple[int, int]]:
    """(offset, data length) of every record of a shard."""
    with path.open("rb") as fh:
        return [(r.offset, len(r.data or b"")) for r in read_records(fh)]


def flip_byte_in_record(path: Path, record: int) -> None:
    """Flip one byte in the middle of a record's data: its data CRC no longer matches."""
    offset, length = record_offsets(path)[record]
    data = bytearray(path.read_bytes())
    data[offset + 12 + length // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate_last_record(path: Path, *, cut: int = 10) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:-cut])
