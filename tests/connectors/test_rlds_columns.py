"""The RLDS connector's columnar path (`layout="columns"`) stores exactly the lake rows of its object path."""

from __future__ import annotations

import io
from pathlib import Path

import lance
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from PIL import Image

from connectors.base import SourceOptions
from connectors.rlds.features import features_json
from connectors.rlds.writer import write_dataset, write_episodes
from curate.ingest import ingest
from curate.lake import Lake
from schemas import Episode
from schemas.columns import FRAME_COLUMNS, STEP_COLUMNS, ColumnsError, EpisodeColumns
from tests.connectors.conformance import read_all
from tests.connectors.rlds_fixtures import write_rlds_fixture
from tests.connectors.test_rlds import _google_example, _google_format_features
from tests.helpers import jpeg_bytes, make_episode, real_data


def _sorted(table: pa.Table, keys: list[str]) -> pa.Table:
    return table.take(pc.sort_indices(table, [(k, "ascending") for k in keys]))  # stable: camera order kept


def _lake_rows(lake_dir: Path) -> dict[str, pa.Table]:
    """Every table of a lake without what differs between two runs (revisions, ingest time)."""
    out = {}
    for name, keys in (("episodes", ["episode_id"]), ("steps", ["episode_id", "index"]),
                       ("frames", ["episode_id", "index"])):
        table = lance.dataset(str(lake_dir / f"{name}.lance")).to_table()
        table = table.drop_columns([c for c in ("revision", "ingested_at") if c in table.column_names])
        out[name] = _sorted(table, keys)
    return out


def _same(x: pa.ChunkedArray, y: pa.ChunkedArray) -> bool:
    """Equal values and types, NaN equal to NaN (a NaN action is stored as such by both paths)."""
    if x.type != y.type:
        return False
    if pa.types.is_list(x.type) and pa.types.is_floating(x.type.value_type):
        return (pc.list_value_length(x).equals(pc.list_value_length(y))
                and np.array_equal(pc.list_flatten(x).to_numpy(), pc.list_flatten(y).to_numpy(), equal_nan=True)
                and pc.is_null(x).equals(pc.is_null(y)))
    return x.equals(y)


def _assert_same_lake_rows(source: Path, tmp_path: Path, *, expect_episodes: int | None = None) -> None:
    objects = ingest([str(source)], lake=str(tmp_path / "objects"), layout="objects")
    columns = ingest([str(source)], lake=str(tmp_path / "columns"), layout="columns")
    assert objects.to_dict()["datasets"] == columns.to_dict()["datasets"]
    assert objects.rejections == columns.rejections
    if expect_episodes is not None:
        assert columns.episodes == expect_episodes
    a, b = _lake_rows(tmp_path / "objects"), _lake_rows(tmp_path / "columns")
    for name in a:
        assert a[name].schema.equals(b[name].schema), name
        for column in a[name].column_names:  # includes quality_flags in the episode rows
            assert _same(a[name].column(column), b[name].column(column)), (name, column)
    lake_a, lake_b = Lake(str(tmp_path / "objects")), Lake(str(tmp_path / "columns"))
    for episode_id in a["episodes"].column("episode_id").to_pylist()[:5]:
        one, two = lake_a.episode(episode_id, frames="eager"), lake_b.episode(episode_id, frames="eager")
        assert repr(one.model_dump(exclude={"ingested_at"})) == repr(two.model_dump(exclude={"ingested_at"}))


def test_columnar_and_object_paths_store_identical_rows_for_our_writer(tmp_path: Path) -> None:
    root = write_rlds_fixture(tmp_path / "src", n=7, n_steps=5)
    extra = make_episode(0, dataset="curate_fixture", n_steps=3, cameras=("front",), seed=1)
    extra.steps[1].discrete_action, extra.steps[1].action_args = "pick", {"object": "cup", "at": [1, 2]}
    extra.steps[2].language = None
    write_episodes([extra], tmp_path / "d" / "curate_fixture" / "1.0.0", name="curate_fixture")
    _assert_same_lake_rows(root, tmp_path / "a", expect_episodes=7)
    _assert_same_lake_rows(tmp_path / "d", tmp_path / "b", expect_episodes=1)


def test_columnar_and_object_paths_store_identical_rows_for_mapped_datasets(tmp_path: Path) -> None:
    root = tmp_path / "g" / "fractal20220817_data" / "0.1.0"
    write_dataset(root, [("train", _google_example(4, s)) for s in range(3)], name="fractal20220817_data",
                  features=_google_format_features(), version="0.1.0")
    _assert_same_lake_rows(tmp_path / "g", tmp_path / "a", expect_episodes=3)


def _png(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buf, format="PNG")
    return buf.getvalue()


def test_quality_flags_agree_between_paths_on_flagged_episodes(tmp_path: Path) -> None:
    features = features_json({"steps": ("steps", {
        "observation": {"cam_a": ("image", [8, 8, 3], "png"), "cam_b": ("image", [8, 8, 3], "jpeg"),
                        "state": ("tensor", "float32", [2])},
        "action": ("tensor", "float32", [3]), "task": ("text",), "reward": ("scalar", "float32"),
        "is_first": ("scalar", "bool"), "is_last": ("scalar", "bool")})})
    n = 25
    examples = []
    for e in range(4):
        action = np.zeros((n, 3)) if e == 0 else np.random.default_rng(e).normal(size=(n, 3))
        if e == 1:
            action[3, 1] = np.nan
        state = np.ones((n, 2))
        if e == 2:
            state[5, 0] = np.inf
        examples.append(("train", {
            "steps/observation/cam_a": [_png((0, 0, 0))] * n,  # black camera, PNG
            "steps/observation/cam_b": [jpeg_bytes((200, 10 * e, 0), 8)] * n,
            "steps/observation/state": state, "steps/action": action,
            "steps/task": ["n/a" if e == 3 else "stack the cups"] * n, "steps/reward": np.zeros(n),
            "steps/is_first": np.arange(n) == 0, "steps/is_last": np.arange(n) == (n - 1 if e % 2 else n)}))
    write_dataset(tmp_path / "lab" / "my_lab_data" / "1.0.0", examples, name="my_lab_data", features=features)
    _assert_same_lake_rows(tmp_path / "lab", tmp_path / "a", expect_episodes=4)
    flags = Lake(str(tmp_path / "a" / "columns")).episodes(columns=["quality_flags"])["quality_flags"].to_list()
    seen = {f for row in flags for f in row}
    assert {"black_camera:cam_a", "idle_actions", "zero_first_action", "nonfinite_values", "no_is_last",
            "placeholder_instruction"} <= seen


def test_columnar_episodes_carry_columns_and_no_step_objects(tmp_path: Path) -> None:
    root = write_rlds_fixture(tmp_path / "src", n=2, n_steps=4)
    (objects, _), (columns, _) = (read_all("rlds", str(root), SourceOptions(layout=layout))
                                  for layout in ("objects", "columns"))
    for obj, col in zip(objects, columns, strict=True):
        assert obj.columns is None and len(obj.steps) == 4
        assert col.steps == [] and col.n_steps == 4 and isinstance(col.columns, EpisodeColumns)
        assert col.columns.steps.schema.equals(STEP_COLUMNS) and col.columns.frames.schema.equals(FRAME_COLUMNS)
        assert col.columns.frame_bytes == sum(len(f.data or b"") for s in obj.steps for f in s.frames)
        assert col.model_dump(exclude={"ingested_at", "steps"}) == obj.model_dump(exclude={"ingested_at", "steps"})


def test_an_episode_refuses_columns_that_do_not_match_it() -> None:
    ep = make_episode(0, n_steps=2)
    empty = EpisodeColumns(STEP_COLUMNS.empty_table(), FRAME_COLUMNS.empty_table())
    with pytest.raises(ValueError, match="not both"):
        ep.attach_columns(empty)
    bare = Episode.model_validate({**ep.model_dump(), "steps": []})
    with pytest.raises(ValueError, match="n_steps is 2 but the step columns hold 0 rows"):
        bare.attach_columns(empty)
    with pytest.raises(ValueError, match="step columns are"):
        EpisodeColumns(pa.table({"index": [0]}), FRAME_COLUMNS.empty_table())


def test_columnar_and_object_paths_store_identical_rows_on_real_bridge_data(tmp_path: Path) -> None:
    _assert_same_lake_rows(real_data("rlds", "bridge_dataset", "1.0.0"), tmp_path, expect_episodes=50)


def test_columns_of_another_layout_are_refused_with_the_reason():
    steps, frames = STEP_COLUMNS.empty_table(), FRAME_COLUMNS.empty_table()
    with pytest.raises(ColumnsError, match="step columns are"):
        EpisodeColumns(steps=steps.drop_columns(["action"]), frames=frames)
    wrong_type = frames.set_column(frames.schema.get_field_index("camera"), "camera",
                                   pa.array([], pa.list_(pa.int32())))
    with pytest.raises(ColumnsError, match="frame columns do not cast"):
        EpisodeColumns(steps=steps, frames=wrong_type)
