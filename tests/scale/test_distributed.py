"""Ingest on Ray Data: same episodes as the local engine, idempotent, retried without duplicates, resumable."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from curate.doctor import check_lake
from curate.ingest import IngestProgress, ingest
from curate.lake import Lake
from tests.scale import crashy

pytestmark = pytest.mark.ray
SKIP_COLUMNS = {"revision", "ingested_at"}
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One small local Ray for the module (2 CPUs, no dashboard, usage statistics off), shut down after.

    Yields the directory where the crash-once connector leaves its marks.
    """
    ray = pytest.importorskip("ray", reason="the Ray engine needs ray[data]")
    marks = tmp_path_factory.mktemp("marks")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ[crashy.MARKS_ENV] = str(marks)
    crashy.register_all()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"worker_process_setup_hook": crashy.register_all,
                          "env_vars": {crashy.MARKS_ENV: str(marks), "RAY_USAGE_STATS_ENABLED": "0",
                                       "PYTHONPATH": str(REPO)}})
    try:
        yield marks
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


def _rows(lake: Lake) -> list[dict]:
    frame = lake.episodes().sort("episode_id")
    return [{k: v for k, v in r.items() if k not in SKIP_COLUMNS} for r in frame.to_dicts()]


def test_ray_ingest_writes_the_same_episodes_as_the_local_engine(ray_local: Path, lerobot_source: str,
                                                                 tmp_path: Path) -> None:
    from curate.distributed import ingest_ray

    local = ingest(lerobot_source, lake=str(tmp_path / "local"))
    report = ingest_ray(lerobot_source, lake=str(tmp_path / "ray"))
    a, b = Lake(tmp_path / "local"), Lake(tmp_path / "ray")
    assert report.units == local.units == 6
    assert report.to_dict()["totals"] == local.to_dict()["totals"]
    assert report.to_dict()["datasets"] == local.to_dict()["datasets"]
    assert b.version == 1  # one atomic commit
    assert _rows(b) == _rows(a)
    for episode_id in a.episodes(columns=["episode_id"])["episode_id"].to_list():
        ea, eb = a.episode(episode_id, frames="eager"), b.episode(episode_id, frames="eager")
        assert len(ea.steps) == len(eb.steps) == ea.n_steps
        np.testing.assert_allclose([s.action for s in ea.steps], [s.action for s in eb.steps], rtol=1e-6)
        assert [f.data for s in ea.steps for f in s.frames] == [f.data for s in eb.steps for f in s.frames]
    assert check_lake(b).ok


def test_reingest_on_ray_adds_nothing(ray_local: Path, lerobot_source: str, tmp_path: Path) -> None:
    from curate.distributed import ingest_ray

    first = ingest_ray(lerobot_source, lake=str(tmp_path / "lake"))
    again = ingest_ray(lerobot_source, lake=str(tmp_path / "lake"))
    assert again.episodes == 0 and again.unchanged == 6
    assert again.version == first.version
    assert Lake(tmp_path / "lake").count() == 6


def test_a_crashed_worker_is_retried_and_never_duplicates_an_episode(ray_local: Path, lerobot_source: str,
                                                                     tmp_path: Path) -> None:
    from curate.distributed import ingest_ray

    report = ingest_ray(lerobot_source, lake=str(tmp_path / "lake"), format=crashy.CrashOnceConnector.name,
                        max_episodes=1)
    assert len(list(ray_local.glob("*.tried"))) == 6  # every unit's first attempt died
    lake = Lake(tmp_path / "lake")
    assert report.episodes == lake.count() == 6 and report.rejected == 0
    steps = lake.table("steps").count_rows()
    assert steps == int(lake.episodes(columns=["n_steps"])["n_steps"].sum())  # no step committed twice
    assert check_lake(lake).ok


def test_an_interrupted_ray_ingest_resumes_like_a_local_one(ray_local: Path, lerobot_source: str,
                                                            tmp_path: Path) -> None:
    from curate.distributed import ingest_ray

    lake_uri = str(tmp_path / "lake")

    def interrupt(p: IngestProgress) -> None:
        if p.units_done >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ingest_ray(lerobot_source, lake=lake_uri, commit_every=2, progress=interrupt)
    committed = Lake(lake_uri).count()
    assert committed == 4  # two waves of two were committed before Ctrl-C; the rest never became visible
    resumed = ingest_ray(lerobot_source, lake=lake_uri)
    assert resumed.unchanged == committed and resumed.episodes == 6 - committed
    lake = Lake(lake_uri)
    assert lake.count() == 6
    assert check_lake(lake).ok


def test_ray_embedding_gives_the_same_vectors_as_the_local_engine(ray_local: Path, lerobot_source: str,
                                                                  tmp_path: Path) -> None:
    import shutil

    from curate.distributed import embed_ray
    from curate.embed import embed_lake, load_vectors
    from curate.models import TINY_ARCH, load_model, make_random_checkpoint

    ingest(lerobot_source, lake=str(tmp_path / "a"))
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    model = load_model(TINY_ARCH, str(make_random_checkpoint(tmp_path / "tiny.pt")), device="cpu")
    local = embed_lake(Lake(tmp_path / "a"), model=model, batch=8)
    on_ray = embed_ray(Lake(tmp_path / "b"), model=model, batch=8)
    assert (on_ray.episodes_embedded, on_ray.images, on_ray.texts) == (local.episodes_embedded, local.images,
                                                                       local.texts) == (6, local.images, local.texts)
    assert local.images > 0
    for kind in ("episode", "image", "instruction"):
        fa, va = load_vectors(Lake(tmp_path / "a"), kind=kind)
        fb, vb = load_vectors(Lake(tmp_path / "b"), kind=kind)
        order_a = np.lexsort([fa["item"].to_numpy(), fa["episode_id"].to_numpy()])
        order_b = np.lexsort([fb["item"].to_numpy(), fb["episode_id"].to_numpy()])
        assert fa["episode_id"].to_numpy()[order_a].tolist() == fb["episode_id"].to_numpy()[order_b].tolist()
        np.testing.assert_allclose(va[order_a], vb[order_b], atol=1e-5)
    again = embed_ray(Lake(tmp_path / "b"), model=model, batch=8)
    assert again.episodes_embedded == 0 and again.episodes_skipped == 6


def test_cli_ingest_engine_ray_prints_the_same_totals_as_local(ray_local: Path, lerobot_source: str,
                                                               tmp_path: Path) -> None:
    import json

    from tests.helpers import run_cli

    env = {"RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(REPO)}
    on_ray = run_cli("ingest", lerobot_source, "--lake", str(tmp_path / "ray"), "--engine", "ray", "--json", env=env)
    assert on_ray.returncode == 0, on_ray.stdout[-2000:] + on_ray.stderr[-2000:]
    local = run_cli("ingest", lerobot_source, "--lake", str(tmp_path / "local"), "--json")
    assert json.loads(on_ray.stdout)["totals"] == json.loads(local.stdout)["totals"]
    assert Lake(tmp_path / "ray").count() == 6


def test_ray_embed_tasks_hold_many_small_images_or_a_few_large_ones() -> None:
    from types import SimpleNamespace

    import numpy as np

    from curate.distributed import EMBED_CHUNK_MAX_EPISODES, embed_chunk_episodes

    def model(size: int) -> SimpleNamespace:
        return SimpleNamespace(preprocess=lambda _img: np.zeros((3, size, size), dtype=np.float32))

    assert embed_chunk_episodes(model(32), 6, 64) == EMBED_CHUNK_MAX_EPISODES  # 12 KB images: capped by episodes
    assert embed_chunk_episodes(model(224), 6, 64) == 18  # 602 KB images: 64 MB of pixels a task
    assert embed_chunk_episodes(model(1024), 6, 64) == 10  # never less than one forward batch
