"""The lake on object storage: every lake operation and the CLI against a local S3-compatible endpoint (moto)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from curate.errors import NotALakeError
from curate.lake import Lake, vacuum
from tests.helpers import make_episode, run_cli
from tests.scale.conftest import S3Endpoint


def _fill(lake: Lake, n: int = 6) -> list[str]:
    eps = [make_episode(i, dataset="bridge" if i < 4 else "aloha", n_steps=3 + i,
                        instruction="put the cup on the plate" if i % 2 else "open the drawer") for i in range(n)]
    lake.write_episodes(eps)
    return [ep.episode_id for ep in eps]


def test_lake_on_s3_round_trips_episodes_steps_and_frames(s3: S3Endpoint) -> None:
    lake = Lake.create(s3.uri("team/lake"))
    ids = _fill(lake)
    reopened = Lake(s3.uri("team/lake"))
    assert reopened.count() == 6
    assert sorted(reopened.episodes(columns=["episode_id"])["episode_id"].to_list()) == sorted(ids)
    original = make_episode(2, dataset="bridge", n_steps=5, instruction="open the drawer")
    episode = reopened.episode(ids[2], frames="eager")
    assert episode.n_steps == 5
    got = [a for s in episode.steps for a in s.action]
    assert got == pytest.approx([a for s in original.steps for a in s.action], rel=1e-6)
    assert episode.steps[0].frames[0].read_bytes() == original.steps[0].frames[0].data
    assert reopened.frame_bytes(ids[2], 1, "front") == original.steps[1].frames[0].data


def test_lake_on_s3_keeps_its_files_under_the_prefix(s3: S3Endpoint) -> None:
    lake = Lake.create(s3.uri("team/lake"))
    _fill(lake, 2)
    listing = pafs.S3FileSystem(endpoint_override=s3.url.removeprefix("http://"), scheme="http",
                                access_key="testing", secret_key="testing", region="us-east-1")
    names = {info.base_name for info in listing.get_file_info(pafs.FileSelector(f"{s3.bucket}/team/lake"))}
    assert {"lake.json", "episodes.lance", "steps.lance", "frames.lance"} <= names
    with listing.open_input_stream(f"{s3.bucket}/team/lake/lake.json") as fh:
        assert json.loads(fh.read())["format"] == "curate-lake"


def test_filters_and_time_travel_work_on_s3(s3: S3Endpoint) -> None:
    lake = Lake.create(s3.uri("lake"))
    ids = _fill(lake)
    first_version = lake.version
    assert lake.count(where='dataset == "aloha"') == 2
    assert lake.count(where='instruction ~ "drawer"') == 3
    lake.write_episodes([make_episode(1, dataset="bridge", n_steps=9, instruction="wipe the table")])
    lake.relabel([ids[0]], "instruction", "stack the blocks", author="test")
    now = Lake(s3.uri("lake"))
    assert now.episode(ids[1], steps=False).n_steps == 9
    assert now.episode(ids[0], steps=False).instruction == "stack the blocks"
    past = Lake(s3.uri("lake"), version=first_version)
    assert past.episode(ids[1], steps=False).n_steps == 4
    assert len(past.episode(ids[1]).steps) == 4
    assert len(now.versions()) >= 2


def test_vacuum_and_optimize_work_on_s3(s3: S3Endpoint) -> None:
    lake = Lake.create(s3.uri("lake"))
    _fill(lake, 3)
    lake.optimize()
    assert vacuum(lake) == {"steps": 0, "frames": 0}
    assert Lake(s3.uri("lake")).count() == 3


def test_opening_a_missing_lake_on_s3_says_it_is_not_a_lake(s3: S3Endpoint) -> None:
    assert not Lake.exists(s3.uri("nothing-here"))
    with pytest.raises(NotALakeError, match="not a lake"):
        Lake(s3.uri("nothing-here"))


def test_cli_stats_ls_show_doctor_read_a_lake_on_s3(s3: S3Endpoint) -> None:
    uri = s3.uri("cli/lake")
    ids = _fill(Lake.create(uri))
    stats = run_cli("stats", "--lake", uri, "--json", env=s3.env)
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["episodes"] == 6
    listed = run_cli("ls", "--lake", uri, "--where", 'dataset == "aloha"', "--json", env=s3.env)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["total"] == 2
    shown = run_cli("show", ids[3], "--lake", uri, "--json", env=s3.env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["episode_id"] == ids[3]
    doctor = run_cli("doctor", "--lake", uri, "--json", env=s3.env)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert json.loads(doctor.stdout)["ok"] is True


def test_cli_ingest_writes_a_lake_on_s3_and_reingest_adds_nothing(s3: S3Endpoint, tmp_path) -> None:
    from curate.demo import write_lerobot
    from curate.demo.world import build_world

    demos = build_world(20, seed=5)
    robot = demos[0].robot.name
    source = write_lerobot.write([d for d in demos if d.robot.name == robot][:3], tmp_path / "src", version="v2.1",
                                 visual="image")
    uri = s3.uri("ingested")
    first = run_cli("ingest", str(source), "--lake", uri, "--json", env=s3.env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert json.loads(first.stdout)["totals"]["episodes"] == 3
    again = run_cli("ingest", str(source), "--lake", uri, "--json", env=s3.env)
    assert json.loads(again.stdout)["totals"] == {"episodes": 0, "steps": 0, "unchanged": 3, "rejected": 0}
    assert Lake(uri).count() == 3
    episode_id = Lake(uri).episodes(columns=["episode_id"])["episode_id"][0]
    assert Lake(uri).episode(episode_id, frames="eager").steps[0].frames[0].read_bytes()[:2] == b"\xff\xd8"


def test_every_command_works_on_a_lake_on_s3(s3: S3Endpoint, tmp_path: Path) -> None:
    """ingest, label/history/undo, versions, embed, search, audit, mix, export, vacuum, doctor: all on s3://."""
    from curate.demo import write_lerobot
    from curate.demo.world import build_world
    from curate.models import TINY_ARCH, make_random_checkpoint

    demos = build_world(30, seed=3)
    robot = demos[0].robot.name
    source = write_lerobot.write([d for d in demos if d.robot.name == robot][:6], tmp_path / "src", version="v2.1",
                                 visual="image")
    uri = s3.uri("walk/lake")
    env = {**s3.env, "HF_HUB_OFFLINE": "1"}

    def ok(*args: str, parse: bool = True) -> dict:
        proc = run_cli(*args, "--lake", uri, env=env)
        assert proc.returncode == 0, f"{args}: {proc.stdout[-1500:]}{proc.stderr[-1500:]}"
        return json.loads(proc.stdout) if parse else {}

    assert ok("ingest", str(source), "--json")["totals"]["episodes"] == 6
    first = Lake(uri).episodes(columns=["episode_id"]).sort("episode_id")["episode_id"][0]
    event = ok("label", first, "--field", "instruction", "--value", "stack the red cube", "--json")["events"][0]
    assert Lake(uri).episode(first).instruction == "stack the red cube"
    assert [e["event_id"] for e in ok("history", "--json")["events"]] == [event["event_id"]]
    ok("undo", event["event_id"], "--json")
    assert Lake(uri).episode(first).instruction != "stack the red cube"
    assert [v["version"] for v in ok("versions", "--json")["versions"]] == [1]  # labels are an overlay

    ckpt = make_random_checkpoint(tmp_path / "tiny.pt", arch=TINY_ARCH)
    embedded = ok("embed", "--model", TINY_ARCH, "--pretrained", str(ckpt), "--json")
    assert embedded["embed"]["episodes_embedded"] == 6 and embedded["derive"]["episodes"] == 6
    hits = ok("search", "the red cube", "--k", "3", "--json")
    assert len(hits["results"]) == 3
    ok("audit", "--out", str(tmp_path / "audit.html"), "--json", str(tmp_path / "audit.json"), parse=False)
    assert json.loads((tmp_path / "audit.json").read_text())["lake"]["episodes"] == 6

    spec = tmp_path / "spec.yaml"
    spec.write_text("name: s3\nstrategy: uniform\nunit: episodes\nbudget: 4\n")
    ok("mix", str(spec), "--out", str(tmp_path / "manifest.json"), "--json")
    exported = ok("export", str(tmp_path / "manifest.json"), "--format", "parquet", "--out", str(tmp_path / "out"),
                  "--json")
    assert exported and (tmp_path / "out" / "manifest.json").exists()
    ok("vacuum", "--json")
    assert ok("doctor", "--json")["ok"] is True


def test_the_ui_browses_shows_and_relabels_a_lake_on_s3(s3: S3Endpoint, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Overview, browse, an episode with its frames, and a relabel: the UI (AppTest) on an s3:// lake."""
    from curate.demo import write_lerobot
    from curate.demo.world import build_world
    from curate.ingest import ingest
    from tests.app.apptest import open_page, texts

    demos = build_world(30, seed=3)
    robot = demos[0].robot.name
    source = write_lerobot.write([d for d in demos if d.robot.name == robot][:4], tmp_path / "src", version="v2.1",
                                 visual="image")
    uri = s3.uri("ui/lake")
    ingest(str(source), lake=uri)
    lake = Lake(uri)
    for key, value in {"CURATE_UI_LAKES": uri, "CURATE_UI_READ_ONLY": "0", "USER": "tester"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("CURATE_UI_USERS", raising=False)

    at = open_page()
    assert {m.label: m.value for m in at.metric}["Episodes"] == "4"
    at = open_page("views/browse.py")
    assert "**4** episodes match" in texts(at)
    eid = lake.page(None, limit=1)[1]["episode_id"][0]
    at = open_page("views/episode.py", query={"episode": eid})
    assert len(at.image) == len(lake.episode(eid, steps=False).cameras) > 0  # frames read from the bucket
    at.text_input(key="ed_instruction_0").set_value("stack the blue block")
    at.button[[b.label for b in at.button].index("Save labels")].click().run()
    assert not at.exception
    assert Lake(uri).episode(eid, steps=False).instruction == "stack the blue block"
