"""Write demo-world episodes as real RLDS (TFDS) datasets, one per demo dataset, with our TFDS-compatible writer.

    from curate.demo.world import build_world
    from curate.demo.write_rlds import write
    root = write(build_world(40, seed=7), "/tmp/demo_rlds")   # /tmp/demo_rlds/<dataset>/1.0.0/...
    # then: curate ingest /tmp/demo_rlds --lake ./lake
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from connectors.rlds.writer import write_episodes
from curate.demo.build import to_episode
from curate.demo.world import DemoEpisode

VERSION = "1.0.0"


def write(demo_episodes: Iterable[DemoEpisode], root: str | Path, *, episodes_per_shard: int = 16) -> Path:
    """Write each demo dataset to `<root>/<dataset>/1.0.0/` (train/val splits, several shards); returns `root`."""
    root = Path(root)
    by_dataset: dict[str, list[DemoEpisode]] = {}
    for demo in demo_episodes:
        by_dataset.setdefault(demo.dataset, []).append(demo)
    for dataset, demos in sorted(by_dataset.items()):
        write_episodes((to_episode(d, source_format="rlds") for d in demos), root / dataset / VERSION, name=dataset,
                       version=VERSION, episodes_per_shard=episodes_per_shard,
                       description=f"Demo world episodes of {dataset}, written by curate.")
    return root
