"""The fast paths of ingest (row builders, columnar staging, quality checks) equal the reference code they replace."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.ingest import check_episode
from curate.lake import Lake, _frame_table, _step_table, episode_tables
from schemas import FRAMES_SCHEMA, STEPS_SCHEMA, Episode, Frame, Step
from schemas.arrow import model_to_row, row_builder
from schemas.columns import EpisodeColumns, frame_bytes
from schemas.episode import EPISODE_ROW_EXCLUDE
from tests.helpers import make_episode


def _episodes() -> list[Episode]:
    episodes = [make_episode(i, dataset="rows", n_steps=4, cameras=("front", "wrist"), seed=i, success=i % 2 == 0,
                             instructions_alt=[f"alt {i}"], objects=["cup"], scene="s") for i in range(3)]
    step = episodes[0].steps[1]
    step.discrete_action, step.action_args, step.state, step.reward = "pick", {"b": [1, 2], "a": None}, None, None
    episodes[1].metadata = {"nested": {"z": 1, "a": [1.5, "x"]}}
    return episodes


def as_columns(episode: Episode) -> Episode:
    """The same episode carrying its steps as Arrow columns (what a columnar connector hands over)."""
    keyed = [(episode.episode_id, "r", step) for step in episode.steps]
    columns = EpisodeColumns(_step_table(keyed).drop_columns(["episode_id", "revision"]),
                             _frame_table(keyed).drop_columns(["episode_id", "revision"]))
    return episode.model_copy(update={"steps": []}).attach_columns(columns)


def test_row_builder_equals_model_to_row() -> None:
    build = row_builder(Episode, exclude=EPISODE_ROW_EXCLUDE)
    for ep in _episodes():
        assert build(ep) == model_to_row(ep, exclude=EPISODE_ROW_EXCLUDE)
        for step in ep.steps:
            assert row_builder(Step)(step) == model_to_row(step)


def test_columnar_step_and_frame_tables_equal_row_by_row_tables() -> None:
    keyed = [(ep.episode_id, f"rev{i}", step) for i, ep in enumerate(_episodes()) for step in ep.steps]
    steps = pa.Table.from_pylist([{"episode_id": e, "revision": r, **model_to_row(s, exclude=frozenset({"frames"}))}
                                  for e, r, s in keyed], schema=STEPS_SCHEMA)
    frames = pa.Table.from_pylist([{"episode_id": e, "revision": r, "index": s.index, **model_to_row(f)}
                                   for e, r, s in keyed for f in s.frames], schema=FRAMES_SCHEMA)
    assert _step_table(keyed).equals(steps)
    assert _frame_table(keyed).equals(frames)
    assert isinstance(keyed[0][2].frames[0], Frame)


def test_staged_episodes_read_back_equal(tmp_path: Path) -> None:
    lake = Lake.create(str(tmp_path / "lake"))
    episodes = _episodes()
    lake.write_episodes(episodes)
    for ep in episodes:
        back = lake.episode(ep.episode_id, frames="eager")
        assert [s.model_dump() for s in back.steps] == [s.model_dump() for s in ep.steps]


def _reference_longest_run(actions: np.ndarray) -> int:
    """The loop `_longest_constant_run` replaced."""
    if len(actions) < 2:
        return len(actions)
    same = np.all(np.isclose(actions[1:], actions[:-1], rtol=0, atol=1e-7), axis=1)
    best = run = 1
    for s in same:
        run = run + 1 if s else 1
        best = max(best, run)
    return best


def test_longest_constant_run_equals_the_reference_loop() -> None:
    import warnings

    from curate.quality import _longest_constant_run

    rng = np.random.default_rng(7)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ingest records warnings as report entries: the fast path must raise none
        for _ in range(2000):
            actions = rng.integers(0, 2, size=(int(rng.integers(0, 40)), int(rng.integers(1, 4)))).astype(float)
            if rng.random() < 0.3:
                actions[rng.random(actions.shape) < 0.2] = rng.choice([np.inf, -np.inf, np.nan])
            if rng.random() < 0.3:
                actions += rng.random(actions.shape) * 1e-7 * int(rng.integers(0, 3))
            assert _longest_constant_run(actions) == _reference_longest_run(actions)


def test_ingest_restores_the_garbage_collector_thresholds(tmp_path: Path) -> None:
    import gc

    import pytest

    from curate.errors import IngestError
    from curate.ingest import ingest
    from tests.connectors.rlds_fixtures import flip_byte_in_record, shards, write_rlds_fixture

    before = gc.get_threshold()
    root = write_rlds_fixture(tmp_path / "src")
    report = ingest(str(root), lake=str(tmp_path / "lake"))
    assert report.episodes == 6 and gc.get_threshold() == before
    flip_byte_in_record(shards(root)[0], 1)
    with pytest.raises(IngestError):
        ingest(str(root), lake=str(tmp_path / "lake2"), strict=True)
    assert gc.get_threshold() == before


def _reference_max_level(data: bytes) -> int | None:
    """The decode `_max_level` did before its JPEG fast path (probe every format, copy to an array)."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format == "JPEG":
                img.draft("L", (max(1, img.width // 8), max(1, img.height // 8)))
            arr = np.asarray(img)
    except Exception:
        return None
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float64) / max(1.0, float(np.iinfo(arr.dtype).max if arr.dtype.kind in "ui" else 1)) * 255
    return int(arr.max()) if arr.size else 0


def test_max_level_equals_the_reference_decode() -> None:
    import io

    from PIL import Image

    from curate.quality import _max_level

    rng = np.random.default_rng(3)
    cases = [b"", b"\xff\xd8\xff not a jpeg", b"\x89PNG not a png", b"random bytes"]
    for size in (1, 7, 64, 200):
        for mode, fmt in (("RGB", "JPEG"), ("L", "JPEG"), ("CMYK", "JPEG"), ("RGB", "PNG"), ("L", "PNG")):
            pixels = (rng.random((size, size, 3)) * int(rng.integers(1, 255))).astype(np.uint8)
            buf = io.BytesIO()
            Image.fromarray(pixels).convert(mode).save(buf, format=fmt)
            cases.append(buf.getvalue())
    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16), 300, np.uint16)).save(buf, format="PNG")
    cases.append(buf.getvalue())
    for data in cases:
        assert _max_level(data) == _reference_max_level(data)


def test_episodes_with_columns_are_checked_and_staged_like_step_objects(tmp_path: Path) -> None:
    episodes = _episodes()
    columnar = [as_columns(ep) for ep in episodes]
    for ep, col in zip(episodes, columnar, strict=True):
        assert check_episode(col) is None and col.steps == [] and frame_bytes(col) == frame_bytes(ep)
    wrong = episodes[0].model_copy(update={"cameras": episodes[0].cameras[:1]})
    assert check_episode(as_columns(wrong)) == check_episode(wrong) == \
        f"step 0 has a frame of undeclared camera {episodes[0].cameras[1].name!r}"
    rows_a, steps_a, frames_a = episode_tables(episodes)
    rows_b, steps_b, frames_b = episode_tables([columnar[0], episodes[1], columnar[2]])  # mixed forms in one batch
    drop = ["revision", "ingested_at"]
    assert rows_a.drop_columns(drop).equals(rows_b.drop_columns(drop))
    order = [("episode_id", "ascending"), ("index", "ascending")]
    for a, b in ((steps_a, steps_b), (frames_a, frames_b)):
        a, b = a.drop_columns(["revision"]), b.drop_columns(["revision"])
        assert a.take(pc.sort_indices(a, order)).equals(b.take(pc.sort_indices(b, order)))
    lake = Lake.create(str(tmp_path / "lake"))
    lake.write_episodes(columnar)
    for ep in episodes:
        back = lake.episode(ep.episode_id, frames="eager")
        assert [s.model_dump() for s in back.steps] == [s.model_dump() for s in ep.steps]
