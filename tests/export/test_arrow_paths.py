"""The Arrow-native exports write exactly what the episode objects of the lake say.

The exports read the lake's steps and frames tables as Arrow and never build Episode/Step/Frame objects per step.
These tests pin their output to a reference built the object way (`lake.episode(id, frames="eager")`, the
relabel rule for per-step language, the RLDS writer's own `episode_example` + `TFDSWriter.encode`): Parquet
tables equal, RLDS records equal byte for byte, LeRobot data and per-episode stats equal.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.rlds.writer import TFDSWriter, episode_example, episode_features
from connectors.tfrecord import read_records
from curate.export import columns as columns_module
from curate.export import export
from curate.export.common import VectorStats
from curate.export.parquet import EPISODES_SCHEMA, steps_schema
from curate.lake import Lake
from curate.mixtures import resolve
from schemas import Episode
from schemas.mixture import Manifest, MixtureSpec
from tests.helpers import make_episode


def current(episode: Episode) -> Episode:
    """The object-path rule: per-step language that only repeats the source instruction follows a relabel."""
    texts = {s.language for s in episode.steps}
    if len(texts) != 1 or None in texts or episode.instruction is None or texts == {episode.instruction}:
        return episode
    return episode.model_copy(update={"steps": [s.model_copy(update={"language": episode.instruction})
                                                for s in episode.steps]})


def written_copies(manifest: Manifest) -> list[tuple[str, int, int]]:
    return [(e.episode_id, c, e.repeats) for e in manifest.selected() for c in range(e.repeats)]


def reference_parquet(lake: Lake, manifest: Manifest, cameras: list[str]) -> tuple[pa.Table, pa.Table]:
    steps, episodes = [], []
    offset = 0
    for n, (eid, copy, copies) in enumerate(written_copies(manifest)):
        entry = next(e for e in manifest.episodes if e.episode_id == eid)
        ep = current(lake.episode(eid, frames="eager"))
        weight = manifest.copy_weight(entry, copies=copies)
        episodes.append({
            "episode_id": eid, "copy": copy, "episode_index": n, "dataset": ep.dataset, "group": entry.group,
            "weight": weight, "repeats": entry.repeats, "sampling_weight": entry.weight,
            "instruction": ep.instruction, "instructions_alt": ep.instructions_alt, "n_steps": ep.n_steps,
            "duration_s": ep.duration_s, "control_hz": ep.control_hz, "robot": ep.embodiment.robot,
            "embodiment_kind": ep.embodiment.kind, "action_kind": ep.action_space.kind,
            "action_names": ep.action_space.names, "state_names": ep.state_space.names if ep.state_space else None,
            "cameras": [c.name for c in ep.cameras], "success": ep.success, "scene": ep.scene,
            "task_type": ep.task_type, "split": ep.split, "tags": ep.tags, "source_format": ep.source.format,
            "source_key": ep.source.key, "first_step": offset, "metadata": json.dumps(ep.metadata, sort_keys=True)})
        for s in ep.steps:
            frames = {f.camera: f.read_bytes() for f in s.frames}
            steps.append({"episode_id": eid, "copy": copy, "episode_index": n, "dataset": ep.dataset,
                          "index": s.index, "timestamp_s": s.timestamp_s, "action": s.action, "state": s.state,
                          "reward": s.reward, "is_first": s.is_first, "is_last": s.is_last,
                          "is_terminal": s.is_terminal, "instruction": ep.instruction, "language": s.language,
                          "discrete_action": s.discrete_action, "weight": weight / ep.n_steps,
                          **{f"image.{c}": frames.get(c) for c in cameras}})
        offset += ep.n_steps
    return (pa.Table.from_pylist(steps, schema=steps_schema(cameras)),
            pa.Table.from_pylist(episodes, schema=EPISODES_SCHEMA))


@pytest.mark.parametrize("mixture", ["natural", "upsampled"])
def test_parquet_tables_equal_the_object_path(export_lake: Lake, mixture: str, request: pytest.FixtureRequest,
                                              tmp_path: Path) -> None:
    manifest: Manifest = request.getfixturevalue(mixture)
    export(manifest, format="parquet", out=tmp_path / "pq")
    want_steps, want_episodes = reference_parquet(export_lake, manifest, ["front", "top", "wrist"])
    got_steps = pq.read_table(tmp_path / "pq" / "steps").select(want_steps.schema.names)
    assert got_steps.cast(want_steps.schema).equals(want_steps)
    assert pq.read_table(tmp_path / "pq" / "episodes.parquet").equals(want_episodes)


def test_a_step_without_a_camera_frame_is_a_null_image_in_its_row(tmp_path: Path) -> None:
    lake = Lake.create(tmp_path / "lake")
    ep = make_episode(0, dataset="gappy", n_steps=5, cameras=("front", "wrist"))
    steps = [s.model_copy(update={"frames": [f for f in s.frames if not (s.index == 2 and f.camera == "wrist")]})
             for s in ep.steps]
    lake.write_episodes([ep.model_copy(update={"steps": steps}), make_episode(1, dataset="gappy", n_steps=3)])
    manifest = resolve(MixtureSpec(name="g", quality=[]), lake)
    export(manifest, format="parquet", out=tmp_path / "pq")
    want_steps, _ = reference_parquet(lake, manifest, ["front", "wrist"])
    got = pq.read_table(tmp_path / "pq" / "steps").select(want_steps.schema.names).cast(want_steps.schema)
    assert got.equals(want_steps)
    assert got.column("image.wrist").null_count == 1 + 3  # the gap, and the second episode has no wrist camera


def test_small_read_batches_write_the_same_tables(natural: Manifest, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    export(natural, format="parquet", out=tmp_path / "big")
    monkeypatch.setattr(columns_module, "BATCH_FRAMES", 7)  # about one episode per lake query
    monkeypatch.setattr(columns_module, "BATCH_EPISODES", 3)
    export(natural, format="parquet", out=tmp_path / "small")
    for name in ("steps", "episodes.parquet"):
        assert pq.read_table(tmp_path / "small" / name).equals(pq.read_table(tmp_path / "big" / name))


@pytest.mark.parametrize("mixture", ["natural", "upsampled"])
def test_rlds_records_equal_the_object_path_byte_for_byte(export_lake: Lake, mixture: str,
                                                          request: pytest.FixtureRequest, tmp_path: Path) -> None:
    manifest: Manifest = request.getfixturevalue(mixture)
    export(manifest, format="rlds", out=tmp_path / "rlds")
    for ds in ("aloha", "bridge"):
        copies = [c for c in written_copies(manifest) if export_lake.episode(c[0], steps=False).dataset == ds]
        first = export_lake.episode(copies[0][0], frames="eager")
        writer = TFDSWriter(tmp_path / "ref" / ds, name=ds, features=episode_features(first))
        cameras = [c.name for c in first.cameras]
        want = []
        for eid, copy, copies_n in copies:
            entry = next(e for e in manifest.episodes if e.episode_id == eid)
            ep = current(export_lake.episode(eid, frames="eager"))
            mixture_meta = {"name": manifest.name, "group": entry.group, "copy": copy, "repeats": entry.repeats,
                            "weight": manifest.copy_weight(entry, copies=copies_n)}
            ep = ep.model_copy(update={"metadata": {**ep.metadata, "mixture": mixture_meta}})
            want.append(writer.encode(episode_example(ep, cameras=cameras, action_dim=first.action_space.dim,
                                                      state_dim=first.state_space.dim)))
        shards = sorted((tmp_path / "rlds" / ds / "1.0.0").glob("*.tfrecord-*"))
        got = [r.data for p in shards for r in read_records(p.open("rb"), check_crc=True)]
        assert got == want
        features = json.loads((tmp_path / "rlds" / ds / "1.0.0" / "features.json").read_text())
        assert features == writer.features


def test_lerobot_data_and_episode_stats_equal_the_object_path(export_lake: Lake, upsampled: Manifest,
                                                              tmp_path: Path) -> None:
    export(upsampled, format="lerobot", out=tmp_path / "lr", cameras="image")
    for ds in ("aloha", "bridge"):
        root = tmp_path / "lr" / ds
        data = pq.read_table(root / "data").to_pylist()
        episodes = sorted(pq.read_table(root / "meta" / "episodes").to_pylist(), key=lambda r: r["episode_index"])
        copies = [c for c in written_copies(upsampled) if export_lake.episode(c[0], steps=False).dataset == ds]
        assert [(r["curate/episode_id"], r["curate/copy"]) for r in episodes] == [(e, c) for e, c, _ in copies]
        for row in episodes:
            ep = current(export_lake.episode(row["curate/episode_id"], frames="eager"))
            rows = data[row["dataset_from_index"]:row["dataset_to_index"]]
            assert [r["action"] for r in rows] == [list(np.float32(s.action)) for s in ep.steps]
            assert [r["observation.state"] for r in rows] == [list(np.float32(s.state)) for s in ep.steps]
            assert [r["frame_index"] for r in rows] == list(range(ep.n_steps))
            for cam in ep.cameras:
                assert [r[f"observation.images.{cam.name}"]["bytes"] for r in rows] == [
                    next(f.read_bytes() for f in s.frames if f.camera == cam.name) for s in ep.steps]
            actions = np.array([s.action for s in ep.steps], np.float32).astype(np.float64)
            assert row["stats/action/mean"] == pytest.approx(actions.mean(0).tolist(), rel=1e-12)
            assert row["stats/action/q01"] == pytest.approx(np.quantile(actions, 0.01, axis=0).tolist(), rel=1e-12)
            ts = (np.arange(ep.n_steps) / ep.control_hz).astype(np.float32).astype(np.float64)
            assert row["stats/timestamp/mean"] == [ts.mean()] and row["stats/timestamp/std"] == [ts.std()]
            assert row["stats/timestamp/q99"] == [np.quantile(ts, 0.99)]
            assert row[f"stats/observation.images.{ep.cameras[0].name}/count"] == [min(8, ep.n_steps)]


def test_vector_stats_keep_a_seeded_uniform_reservoir_above_the_cap() -> None:
    rng = np.random.default_rng(3)
    blocks = [rng.normal(size=(n, 2)) for n in (5, 40, 1, 300)]
    stats = VectorStats(seed=7, reservoir=50)
    for block in blocks:
        stats.add(block)
    again = VectorStats(seed=7, reservoir=50)
    for block in blocks:
        again.add(block)
    allrows = np.concatenate(blocks)
    kept = stats._rows[:stats._kept]
    assert stats.count == len(allrows) and len(kept) == 50
    assert {tuple(r) for r in kept} <= {tuple(r) for r in allrows}
    assert np.array_equal(kept, again._rows[:again._kept])
    out = stats.result()
    assert out["mean"] == pytest.approx(allrows.mean(0).tolist())
    exact = VectorStats(reservoir=1000)
    for block in blocks:
        exact.add(block)
    assert exact.result()["q50"] == pytest.approx(np.quantile(allrows, 0.5, axis=0).tolist())


def test_a_lake_read_error_reaches_the_exporter(natural: Manifest, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("lake storage unreachable")

    monkeypatch.setattr(columns_module, "load_columns", broken)
    with pytest.raises(OSError, match="unreachable"):
        export(natural, format="parquet", out=tmp_path / "pq")
    assert not (tmp_path / "pq").exists()


def test_video_reference_frames_are_decoded_to_jpeg_for_parquet_and_rlds(tmp_path: Path) -> None:
    from connectors.tfrecord import decode_example
    from curate.media import decode_frame, decode_image
    from schemas import Camera, Frame, Step
    from tests.export.test_lerobot import _mp4

    video = tmp_path / "src.mp4"
    _mp4(video, [(30 * i, 100, 200) for i in range(6)])
    ep = make_episode(0, dataset="cam", n_steps=6, cameras=())
    steps = [Step(**{**s.model_dump(exclude={"frames"}), "frames": [
        Frame(camera="front", format="video", video_uri=str(video), video_timestamp_s=t / 10)]})
        for t, s in enumerate(ep.steps)]
    lake = Lake.create(tmp_path / "lake")
    lake.write_episodes([ep.model_copy(update={"steps": steps, "cameras": [Camera(name="front", height=16,
                                                                                   width=16)]})])
    manifest = resolve(MixtureSpec(name="v", quality=[]), lake)
    want = [np.asarray(decode_frame(f), np.int16) for s in lake.episode(ep.episode_id).steps for f in s.frames]
    result = export(manifest, format="parquet", out=tmp_path / "pq")
    assert result.frames_reencoded == 6 and result.frames == 6
    got = pq.read_table(tmp_path / "pq" / "steps").column("image.front").to_pylist()
    result = export(manifest, format="rlds", out=tmp_path / "rlds")
    assert result.frames_reencoded == 6
    shard = next((tmp_path / "rlds" / "cam" / "1.0.0").glob("*.tfrecord-*"))
    (record,) = read_records(shard.open("rb"))
    assert decode_example(record.data)["steps/observation/front"][1] == got  # the same JPEG bytes in both
    features = json.loads((tmp_path / "rlds" / "cam" / "1.0.0" / "features.json").read_text())
    assert "jpeg" in json.dumps(features)
    for data, pixels in zip(got, want, strict=True):
        assert data[:2] == b"\xff\xd8" and np.abs(np.asarray(decode_image(data), np.int16) - pixels).mean() < 3
