"""Ingest on Ray Data: same episodes as the local engine, idempotent, retried without duplicates, resumable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from connectors import registry
from connectors.base import BadEpisode, SourceOptions
from connectors.lerobot.connector import LeRobotConnector
from curate.doctor import check_lake
from curate.errors import IngestError
from curate.lake import Lake
from schemas import Episode

pytestmark = pytest.mark.ray
SKIP_COLUMNS = {"revision", "ingested_at"}


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    """One small local Ray for the module: 2 CPUs, no dashboard, usage statistics off; shut down after."""
    ray = pytest.importorskip("ray", reason="the Ray engine needs ray[data]")
    import os

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def lerobot_source(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A LeRobot v2.1 dataset of 6 episodes with JPEG frames: one work unit per episode."""
    from curate.demo import write_lerobot
    from curate.demo.world import build_world

    demos = build_world(30, seed=3)
    robot = demos[0].robot.name
    root = tmp_path_factory.mktemp("src") / "lerobot"
    write_lerobot.write([d for d in demos if d.robot.name == robot][:6], root, version="v2.1", visual="image")
    return str(root)


def _local_ingest(source: str, lake: Lake) -> list[str]:
    """What the local engine does with a connector: stream every unit's episodes into the lake."""
    conn = registry.get("lerobot")
    units = conn.list_units(source, SourceOptions())
    episodes = [e for u in units for e in conn.episodes(u, SourceOptions()) if isinstance(e, Episode)]
    lake.write_episodes(episodes)
    return [e.episode_id for e in episodes]


def _rows(lake: Lake) -> list[dict]:
    frame = lake.episodes().sort("episode_id")
    return [{k: v for k, v in r.items() if k not in SKIP_COLUMNS} for r in frame.to_dicts()]


class FlakyConnector(LeRobotConnector):
    """LeRobot, except the first attempt at each unit dies after its first episode (a worker crash)."""

    def __init__(self, marks: str = "") -> None:
        self.marks = marks

    def episodes(self, unit: str, options: SourceOptions) -> Iterator[Episode | BadEpisode]:
        mark = Path(self.marks) / (unit.rsplit("/", 1)[-1] + ".tried")
        for episode in super().episodes(unit, options):
            yield episode
            if not mark.exists():
                mark.touch()
                raise RuntimeError(f"simulated worker failure in {unit}")


class BrokenConnector(LeRobotConnector):
    """LeRobot, except one unit always fails (an ingest interrupted part-way)."""

    def __init__(self, broken_suffix: str = "") -> None:
        self.broken_suffix = broken_suffix

    def episodes(self, unit: str, options: SourceOptions) -> Iterator[Episode | BadEpisode]:
        if unit.endswith(self.broken_suffix):
            raise RuntimeError(f"simulated crash in {unit}")
        yield from super().episodes(unit, options)


def test_ray_ingest_writes_the_same_episodes_as_the_local_engine(ray_local: None, lerobot_source: str,
                                                                 tmp_path: Path) -> None:
    from curate.distributed import ingest_ray

    local = Lake.create(tmp_path / "local")
    ids = _local_ingest(lerobot_source, local)
    report = ingest_ray(lerobot_source, str(tmp_path / "ray"), format="lerobot")
    on_ray = Lake(tmp_path / "ray")
    assert report.units == 6 and report.episodes_written == 6 and report.commits == 1
    assert sorted(on_ray.episodes(columns=["episode_id"])["episode_id"].to_list()) == sorted(ids)
    assert _rows(on_ray) == _rows(local)
    for episode_id in ids:
        a, b = local.episode(episode_id, frames="eager"), on_ray.episode(episode_id, frames="eager")
        assert len(a.steps) == len(b.steps) == a.n_steps
        np.testing.assert_allclose([s.action for s in a.steps], [s.action for s in b.steps], rtol=1e-6)
        assert [f.data for s in a.steps for f in s.frames] == [f.data for s in b.steps for f in s.frames]
    assert check_lake(on_ray).ok


def test_reingest_on_ray_adds_nothing(ray_local: None, lerobot_source: str, tmp_path: Path) -> None:
    from curate.distributed import ingest_ray

    first = ingest_ray(lerobot_source, str(tmp_path / "lake"), format="lerobot")
    again = ingest_ray(lerobot_source, str(tmp_path / "lake"), format="lerobot")
    assert again.episodes_written == 0 and again.episodes_unchanged == 6 and again.commits == 0
    assert again.version == first.version
    assert Lake(tmp_path / "lake").count() == 6


def test_a_failed_task_is_retried_and_never_duplicates_an_episode(ray_local: None, lerobot_source: str,
                                                                  tmp_path: Path) -> None:
    from curate.distributed import ingest_ray

    marks = tmp_path / "marks"
    marks.mkdir()
    report = ingest_ray(lerobot_source, str(tmp_path / "lake"), format=FlakyConnector(str(marks)),
                        max_episodes=1, max_retries=2)
    assert len(list(marks.iterdir())) == 6  # every unit failed once
    lake = Lake(tmp_path / "lake")
    assert report.episodes_written == lake.count() == 6
    steps = lake._dataset("steps").count_rows()
    assert steps == int(lake.episodes(columns=["n_steps"])["n_steps"].sum())  # no step committed twice
    assert check_lake(lake).ok


def test_an_interrupted_ray_ingest_resumes_like_a_local_one(ray_local: None, lerobot_source: str,
                                                            tmp_path: Path) -> None:
    from curate.distributed import ingest_ray

    lake_uri = str(tmp_path / "lake")
    with pytest.raises(IngestError, match="re-run the same command to resume"):
        ingest_ray(lerobot_source, lake_uri, format=BrokenConnector("episode_000005.parquet"), commit_every=2,
                   max_retries=0)
    committed = Lake(lake_uri).count()
    assert committed == 4  # two waves of two committed before the crash; the rest never became visible
    resumed = ingest_ray(lerobot_source, lake_uri, format="lerobot")
    assert resumed.episodes_unchanged == committed and resumed.episodes_written == 6 - committed
    lake = Lake(lake_uri)
    assert lake.count() == 6
    assert check_lake(lake).ok
