"""Parquet export: round trip field for field, frames byte for byte; DuckDB and Polars read it."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.export import export, verify_checksums
from curate.lake import Lake
from schemas.mixture import Manifest


def test_parquet_round_trip_matches_the_lake_field_for_field(export_lake: Lake, natural: Manifest,
                                                             tmp_path: Path) -> None:
    out = tmp_path / "pq"
    result = export(natural, format="parquet", out=out)
    assert result.episodes == 10 and result.frames_reencoded == 0
    steps = pl.read_parquet(out / "steps" / "*.parquet")
    episodes = pl.read_parquet(out / "episodes.parquet")
    assert episodes.height == 10 and steps.height == result.steps
    for eid in episodes["episode_id"].to_list():
        ep = export_lake.episode(eid, frames="eager")
        rows = steps.filter(pl.col("episode_id") == eid).sort("index")
        assert rows.height == ep.n_steps
        row = episodes.filter(pl.col("episode_id") == eid).row(0, named=True)
        assert row["instruction"] == ep.instruction and row["dataset"] == ep.dataset
        assert row["action_names"] == ep.action_space.names
        for step, r in zip(ep.steps, rows.iter_rows(named=True), strict=True):
            assert r["action"] == step.action and r["state"] == step.state
            assert (r["timestamp_s"], r["reward"], r["is_first"], r["is_last"]) == (
                step.timestamp_s, step.reward, step.is_first, step.is_last)
            assert r["instruction"] == ep.instruction
            assert r["language"] == (ep.instruction if step.language is not None else None)
            for frame in step.frames:
                assert r[f"image.{frame.camera}"] == frame.read_bytes()


def test_the_relabelled_instruction_is_what_gets_exported(natural: Manifest, tmp_path: Path) -> None:
    export(natural, format="parquet", out=tmp_path / "pq")
    got = pl.read_parquet(tmp_path / "pq" / "episodes.parquet")["instruction"].to_list()
    assert "pick up the red cup" in got


def test_duckdb_reads_steps_and_weights_give_the_achieved_shares(upsampled: Manifest, tmp_path: Path) -> None:
    export(upsampled, format="parquet", out=tmp_path / "pq")
    rows = duckdb.sql(f"select dataset, sum(weight) as w, count(distinct episode_index) as copies "
                      f"from read_parquet('{tmp_path}/pq/steps/*.parquet') group by dataset order by dataset"
                      ).fetchall()
    achieved = {g.group: g.achieved_share for g in upsampled.groups}
    assert {d: w for d, w, _ in rows} == pytest.approx(achieved)
    assert {d: c for d, _, c in rows} == {g.group: int(g.achieved_units) for g in upsampled.groups}


def test_repeats_are_materialized_as_copies(upsampled: Manifest, tmp_path: Path) -> None:
    export(upsampled, format="parquet", out=tmp_path / "pq")
    episodes = pl.read_parquet(tmp_path / "pq" / "episodes.parquet")
    copies = episodes.group_by("episode_id").agg(pl.len().alias("n"), pl.col("repeats").first())
    assert (copies["n"] == copies["repeats"]).all()
    export(upsampled, format="parquet", out=tmp_path / "once", repeats="once")
    assert pl.read_parquet(tmp_path / "once" / "episodes.parquet").height == upsampled.selected_episodes


def test_manifest_json_records_spec_version_counts_and_checksums(natural: Manifest, tmp_path: Path) -> None:
    out = tmp_path / "pq"
    result = export(natural, format="parquet", out=out)
    info = json.loads((out / "manifest.json").read_text())
    assert info["lake_version"] == natural.lake_version and info["spec_hash"] == natural.spec_hash
    assert info["counts"]["episodes"] == 10 and info["counts"]["steps"] == result.steps
    assert set(info["checksums"]["files"]) >= {"episodes.parquet", "normalization.json", "mixture_weights.json",
                                                "mixture_weights.py", "mixture_manifest.json"}
    assert verify_checksums(out) == []
    with (out / "episodes.parquet").open("ab") as fh:
        fh.write(b"x")
    assert verify_checksums(out) == ["episodes.parquet"]


def test_normalization_stats_match_numpy_per_dataset(export_lake: Lake, natural: Manifest, tmp_path: Path) -> None:
    export(natural, format="parquet", out=tmp_path / "pq")
    stats = json.loads((tmp_path / "pq" / "normalization.json").read_text())
    assert set(stats) == {"aloha", "bridge"}
    ids = export_lake.episodes(where='dataset == "aloha"', columns=["episode_id"])["episode_id"].to_list()
    actions = np.array([s.action for i in ids for s in export_lake.episode(i, frames="none").steps], np.float32)
    got = stats["aloha"]["action"]
    assert got["names"] == ["j0", "j1", "j2"] and got["count"] == len(actions)
    assert got["mean"] == pytest.approx(actions.astype(np.float64).mean(0).tolist())
    assert got["std"] == pytest.approx(actions.astype(np.float64).std(0).tolist())
    assert got["q01"] == pytest.approx(np.quantile(actions.astype(np.float64), 0.01, axis=0).tolist())
    assert got["q99"] == pytest.approx(np.quantile(actions.astype(np.float64), 0.99, axis=0).tolist())


def test_mixture_weights_are_written_oxe_style_and_as_json(upsampled: Manifest, tmp_path: Path) -> None:
    export(upsampled, format="parquet", out=tmp_path / "pq")
    named = runpy.run_path(str(tmp_path / "pq" / "mixture_weights.py"))["OXE_NAMED_MIXTURES"]
    pairs = named["uniform"]
    assert [d for d, _ in pairs] == ["aloha", "bridge"] and sum(w for _, w in pairs) == pytest.approx(1.0)
    as_json = json.loads((tmp_path / "pq" / "mixture_weights.json").read_text())
    assert [(w["dataset"], w["weight"]) for w in as_json["weights"]] == pairs
    assert as_json["balance_weights"] is False


def test_hf_datasets_loads_the_steps_with_images_as_binary(natural: Manifest, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets", reason="HF datasets is not installed (pip install datasets)")
    export(natural, format="parquet", out=tmp_path / "pq")
    ds = datasets.load_dataset("parquet", data_files={"train": str(tmp_path / "pq" / "steps" / "*.parquet")},
                               split="train", cache_dir=str(tmp_path / "hf"))
    steps = pl.read_parquet(tmp_path / "pq" / "steps" / "*.parquet")
    assert ds.num_rows == steps.height
    assert ds.features["image.front"].dtype == "binary"
    assert ds[0]["image.front"] == steps["image.front"][0]
    table = pq.ParquetDataset(str(tmp_path / "pq" / "steps")).read()
    assert table.schema.field("image.front").type.equals(pa.binary())
