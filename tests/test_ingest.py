"""The ingest engine: idempotent, parallel, resumable after SIGKILL, strict, reported; and the CLI around it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from curate.doctor import check_lake
from curate.errors import IngestError
from curate.ingest import SourceNotRecognisedError, convert_unit, ingest, plan_units
from curate.lake import Lake
from tests.connectors.rlds_fixtures import flip_byte_in_record, shards, write_rlds_fixture
from tests.helpers import REPO, run_cli


def _ids(lake: str) -> list[str]:
    return Lake(lake).episodes(columns=["episode_id"])["episode_id"].to_list()


def test_reingest_adds_nothing(tmp_path: Path) -> None:
    src = write_rlds_fixture(tmp_path / "src", n=6)
    lake = str(tmp_path / "lake")
    first = ingest([str(src)], lake=lake)
    assert first.episodes == 6 and first.steps == 30
    version = Lake(lake).version
    second = ingest([str(src)], lake=lake)
    assert (second.episodes, second.unchanged) == (0, 6)
    assert Lake(lake).version == version
    assert sorted(_ids(lake)) == sorted(set(_ids(lake)))


def test_changed_source_episode_replaces_its_row_and_history_keeps_the_old(tmp_path: Path) -> None:
    from curate.demo.write_alfred import write

    root = write(tmp_path / "alfred", trials=4, seed=3)
    lake = str(tmp_path / "lake")
    ingest([str(root)], lake=lake)
    old_version = Lake(lake).version
    trial = sorted(root.glob("train/*/*/traj_data.json"))[0]
    data = json.loads(trial.read_text())
    data["turk_annotations"]["anns"][0]["task_desc"] = "a brand new instruction"
    trial.write_text(json.dumps(data))
    report = ingest([str(root)], lake=lake)
    assert report.episodes == 1
    assert report.datasets["alfred"].replaced == 1
    assert report.unchanged == 4
    now = Lake(lake)
    assert now.count() == 5
    assert now.count('instruction == "a brand new instruction"') == 1
    assert Lake(lake, version=old_version).count('instruction == "a brand new instruction"') == 0


def test_parallel_workers_ingest_the_same_episodes(tmp_path: Path) -> None:
    src = write_rlds_fixture(tmp_path / "src", n=8, per_shard=2)
    serial = ingest([str(src)], lake=str(tmp_path / "a"), workers=1)
    parallel = ingest([str(src)], lake=str(tmp_path / "b"), workers=2)
    assert parallel.episodes == serial.episodes == 8 and parallel.steps == serial.steps
    assert sorted(_ids(str(tmp_path / "a"))) == sorted(_ids(str(tmp_path / "b")))
    again = ingest([str(src)], lake=str(tmp_path / "b"), workers=2)
    assert (again.episodes, again.unchanged) == (0, 8)
    limited = ingest([str(src)], lake=str(tmp_path / "c"), workers=2, limit=5, batch_episodes=2)
    assert limited.episodes == 5 and Lake(str(tmp_path / "c")).count() == 5
    assert check_lake(Lake(str(tmp_path / "b"))).ok


@pytest.mark.parametrize("workers", [1, 2])
def test_strict_stops_at_the_first_bad_episode_and_commits_nothing(tmp_path: Path, workers: int) -> None:
    lake = str(tmp_path / "lake")
    ingest([str(write_rlds_fixture(tmp_path / "first", name="first_data"))], lake=lake)
    before = (Lake(lake).version, Lake(lake).count())
    bad = write_rlds_fixture(tmp_path / "second", n=8, per_shard=4, name="second_data")
    flip_byte_in_record(shards(bad)[-1], 1)
    with pytest.raises(IngestError, match="nothing of this run was committed") as info:
        ingest([str(bad)], lake=lake, strict=True, batch_episodes=2, workers=workers)
    report = info.value.report  # type: ignore[attr-defined]
    assert report.committed is False and report.rejected == 1
    after = Lake(lake)
    assert (after.version, after.count()) == before
    assert check_lake(after).ok
    relaxed = ingest([str(bad)], lake=lake, workers=workers, limit=None)
    assert relaxed.episodes == 7 and relaxed.rejected == 1
    assert check_lake(Lake(lake)).ok


def test_unrecognised_source_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(SourceNotRecognisedError, match="no connector recognises"):
        ingest([str(tmp_path / "x.txt")], lake=str(tmp_path / "lake"))


def test_convert_unit_is_a_plain_function_of_its_unit(tmp_path: Path) -> None:
    src = write_rlds_fixture(tmp_path / "src", n=4, per_shard=2)
    units, formats = plan_units([str(src)])
    assert formats == {str(src): "rlds"} and len(units) == 3
    import pickle

    unit = pickle.loads(pickle.dumps(units[0]))
    episodes = list(convert_unit(unit))
    assert len(episodes) == 2
    assert all("no_is_last" not in e.quality_flags for e in episodes)


_KILL_SCRIPT = textwrap.dedent("""
    import sys
    from curate.ingest import ingest
    if __name__ == "__main__":
        ingest([sys.argv[1]], lake=sys.argv[2], batch_episodes=3, workers=int(sys.argv[3]))
""")


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_ingest_killed_with_sigkill_resumes_to_exactly_once(tmp_path: Path, workers: int) -> None:
    src = write_rlds_fixture(tmp_path / "src", n=30, n_steps=6, per_shard=5)
    lake = str(tmp_path / "lake")
    script = tmp_path / "run.py"
    script.write_text(_KILL_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    killed_mid_run = 0
    for attempt in range(4):
        proc = subprocess.Popen([sys.executable, str(script), str(src), lake, str(workers)], env=env,
                                start_new_session=True)
        deadline = time.monotonic() + 120
        start_count = Lake(lake).count() if Lake.exists(lake) else 0
        while time.monotonic() < deadline and proc.poll() is None:
            if Lake.exists(lake) and Lake(lake).count() > start_count:
                time.sleep(0.05 * attempt)
                break
            time.sleep(0.02)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            killed_mid_run += 1
        proc.wait(timeout=30)
        if Lake.exists(lake):
            ids = _ids(lake)
            assert len(ids) == len(set(ids)), "an episode is visible twice after a SIGKILL"
            assert check_lake(Lake(lake)).ok
    report = ingest([str(src)], lake=lake, workers=workers)
    ids = _ids(lake)
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 30
    assert report.episodes + report.unchanged == 30
    assert killed_mid_run >= 1
    lk = Lake(lake)
    for episode_id in ids[:5]:
        episode = lk.episode(episode_id, frames="eager")
        assert len(episode.steps) == episode.n_steps == 6
        assert all(len(s.frames) == 2 for s in episode.steps)


def test_cli_ingest_writes_a_report_and_exits_with_documented_codes(tmp_path: Path) -> None:
    src = write_rlds_fixture(tmp_path / "src", n=6)
    flip_byte_in_record(shards(src)[0], 0)
    lake = str(tmp_path / "lake")
    out = run_cli("ingest", str(src), "--lake", lake, "--report", str(tmp_path / "r.json"))
    assert out.returncode == 1, out.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["totals"]["episodes"] == 5 and report["totals"]["rejected"] == 1
    rejection = report["rejections"][0]
    assert rejection["record"] == "0" and "CRC" in rejection["reason"] and rejection["file"].endswith("-of-00002")
    assert "data CRC mismatch" in out.stderr
    again = run_cli("ingest", str(src), "--lake", lake, "--strict", "--json")
    assert again.returncode == 7 and "nothing of this run was committed" in again.stderr
    missing = run_cli("ingest", str(tmp_path / "nope"), "--lake", lake)
    assert missing.returncode == 2 and "no connector recognises" in missing.stderr
    assert "Exit codes" in run_cli("ingest", "--help").stdout


@pytest.mark.parametrize("client", ["s3fs", "pyarrow"])
def test_ingest_from_a_local_s3_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, client: str) -> None:
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        for key, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                           "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(key, value)
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="robotics")
        src = write_rlds_fixture(tmp_path / "src", n=4)
        for path in src.rglob("*"):
            if path.is_file():
                s3.upload_file(str(path), "robotics", f"oxe/{path.relative_to(tmp_path / 'src')}")
        import fsspec

        fsspec.config.conf.clear()
        if client == "pyarrow":  # as on a machine without s3fs: pyarrow's native S3 client is used
            real = fsspec.core.url_to_fs

            def no_s3fs(uri: str, **kw: object) -> object:
                if str(uri).startswith("s3://"):
                    raise ImportError("Install s3fs to access S3")
                return real(uri, **kw)

            monkeypatch.setattr(fsspec.core, "url_to_fs", no_s3fs)
        report = ingest(["s3://robotics/oxe"], lake=str(tmp_path / "lake"))
        assert report.episodes == 4 and report.rejected == 0
        ep = Lake(str(tmp_path / "lake")).episode(_ids(str(tmp_path / "lake"))[0], frames="eager")
        assert ep.source.uri.startswith("s3://robotics/oxe/")
        assert ep.steps[0].frames[0].read_bytes()[:3] == b"\xff\xd8\xff"
    finally:
        server.stop()


def test_demo_writers_produce_sources_that_ingest_completely(tmp_path: Path) -> None:
    from curate.demo.world import build_world
    from curate.demo.write_alfred import write as write_alfred
    from curate.demo.write_rlds import write as write_rlds

    world = build_world(12, seed=4)
    rlds_root = write_rlds(world, tmp_path / "rlds")
    alfred_root = write_alfred(tmp_path / "alfred", trials=3, seed=4)
    seen: list[tuple[int, int, int]] = []
    report = ingest([str(rlds_root), str(alfred_root)], lake=str(tmp_path / "lake"),
                    progress=lambda p: seen.append((p.units_done, p.units_total, p.episodes)))
    assert report.rejected == 0 and report.warnings == []
    expected = {}
    for demo in world:
        expected[demo.dataset] = expected.get(demo.dataset, 0) + 1
    assert {k: v.episodes for k, v in report.datasets.items() if k != "alfred"} == expected
    assert report.datasets["alfred"].episodes == 4
    assert seen and seen[-1][0] == seen[-1][1] == report.units
    lake = Lake(str(tmp_path / "lake"))
    assert lake.count() == len(world) + 4
    assert lake.count('task_type == "pick_and_place"') == len(world)


def test_dataset_and_split_options_apply(tmp_path: Path) -> None:
    src = write_rlds_fixture(tmp_path / "src", n=6)
    report = ingest([str(src)], lake=str(tmp_path / "lake"), dataset="renamed", splits=["train"])
    assert list(report.datasets) == ["renamed"] and report.episodes == 4
    assert Lake(str(tmp_path / "lake")).count('dataset == "renamed" and split == "train"') == 4
