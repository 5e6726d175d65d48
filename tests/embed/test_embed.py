"""Embedding, search, derived columns and their errors, with the tiny CLIP loaded from a local checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from curate.analytics import EmptySliceError, derive, run_audit
from curate.embed import (
    EmbeddingsMissingError,
    ModelMismatchError,
    active_model,
    embed_lake,
    keyframe_indices,
    load_vectors,
    open_vectors,
)
from curate.lake import Lake
from curate.models import ModelUnavailableError, load_model, model_id_for
from curate.search import results_json, search


def test_keyframe_policy_names_fractions_and_strides() -> None:
    assert keyframe_indices(11) == [0, 5, 10]
    assert keyframe_indices(11, "0.5") == [5]
    assert keyframe_indices(10, "every:4") == [0, 4, 8]
    assert keyframe_indices(1) == [0]


def test_tiny_checkpoint_loads_through_the_checkpoint_path(tiny_checkpoint: Path) -> None:
    model = load_model(pretrained=str(tiny_checkpoint), device="cpu")
    assert model.arch == "curate-tiny"
    assert model.model_id == model_id_for("curate-tiny", str(tiny_checkpoint))
    vecs = model.encode_texts(["red cube", "blue ball"])
    assert vecs.shape == (2, model.dim)
    assert abs(float((vecs[0] ** 2).sum()) - 1.0) < 1e-4


def test_missing_pretrained_weights_fail_at_once_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError, match="--pretrained /path/to"):
        load_model("ViT-B-32", "laion2b_s34b_b79k", device="cpu")


def test_a_missing_checkpoint_file_and_an_unknown_arch_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        load_model(pretrained=str(tmp_path / "nope.pt"))
    with pytest.raises(ModelUnavailableError, match="unknown CLIP architecture"):
        load_model("no-such-arch", None, allow_random=True)


def test_embedding_stores_every_kind_and_reruns_embed_nothing(embedded_lake: Path, tiny_checkpoint: Path) -> None:
    lake = Lake(embedded_lake)
    info = active_model(lake)
    assert info["arch"] == "curate-tiny"
    table = pl.from_arrow(open_vectors(lake, info["model_id"]).to_lance().to_table(columns=["episode_id", "kind"]))
    kinds = set(table["kind"].to_list())
    assert {"image", "instruction", "segment", "episode"} <= kinds
    assert table.filter(pl.col("kind") == "episode").height == lake.count()
    again = embed_lake(lake, model=load_model(pretrained=str(tiny_checkpoint), device="cpu"))
    assert again.episodes_embedded == 0 and again.episodes_skipped == lake.count()


def table_rows_of(lake: Lake, model_id: str) -> int:
    return open_vectors(lake, model_id).count_rows()


def test_relabelled_instruction_reembeds_only_that_episode(embedded_lake: Path, tiny_checkpoint: Path) -> None:
    lake = Lake(embedded_lake)
    eid = lake.episodes(where="instruction is not null", limit=1)["episode_id"][0]
    before = table_rows_of(lake, active_model(lake)["model_id"])
    lake.relabel([eid], "instruction", "stack the teal ring on the box", author="test")
    report = embed_lake(lake, model=load_model(pretrained=str(tiny_checkpoint), device="cpu"))
    assert report.episodes_embedded == 1 and report.rows_deleted > 0  # the old rows of that one episode only
    assert table_rows_of(lake, report.model_id) == before
    rows = pl.from_arrow(open_vectors(lake, report.model_id).to_lance().to_table(
        filter=f"episode_id = '{eid}' AND kind = 'instruction'"))
    assert rows["text"].to_list() == ["stack the teal ring on the box"]


def test_search_returns_scored_episodes_with_their_keyframe(embedded_lake: Path) -> None:
    lake = Lake(embedded_lake)
    res = search(lake, "red cube", k=5)
    assert res.height == 5 and res["episode_id"].n_unique() == 5
    assert res["score"].to_list() == sorted(res["score"].to_list(), reverse=True)
    assert all("@" in item for item in res["item"].to_list())
    out = results_json(res)
    assert set(out["results"][0]) >= {"episode_id", "score", "instruction", "dataset"}


def test_search_prefilter_keeps_only_matching_episodes(embedded_lake: Path) -> None:
    lake = Lake(embedded_lake)
    res = search(lake, "a cube", where='dataset == "deploy_kitchen"', k=50)
    assert res.height == lake.count('dataset == "deploy_kitchen"')
    assert set(res["dataset"].to_list()) == {"deploy_kitchen"}
    assert search(lake, "a cube", where='dataset == "nothing"').height == 0


def test_search_like_an_episode_excludes_itself(embedded_lake: Path) -> None:
    lake = Lake(embedded_lake)
    eid = lake.episodes(limit=1)["episode_id"][0]
    res = search(lake, like=eid, k=3)
    assert res.height == 3 and eid not in res["episode_id"].to_list()


def test_an_unembedded_lake_is_a_clear_error(demo_lake: Path) -> None:
    lake = Lake(demo_lake)
    with pytest.raises(EmbeddingsMissingError, match="curate embed"):
        search(lake, "red cube")
    with pytest.raises(EmbeddingsMissingError, match="curate embed"):
        run_audit(lake)


def test_vectors_of_another_model_are_a_clear_error(embedded_lake: Path) -> None:
    lake = Lake(embedded_lake)
    with pytest.raises(ModelMismatchError, match="no vectors of model"):
        search(lake, "red cube", model_id="vit_b_32__laion2b_s34b_b79k")
    with pytest.raises(EmbeddingsMissingError):
        load_vectors(lake, model_id="vit_b_32__laion2b_s34b_b79k")


def test_an_empty_slice_is_a_clear_error(embedded_lake: Path) -> None:
    with pytest.raises(EmptySliceError, match="matches no episode"):
        run_audit(Lake(embedded_lake), where='dataset == "nothing"')


def test_derived_clusters_and_machine_tags_are_filterable(embedded_lake: Path) -> None:
    lake = Lake(embedded_lake)
    out = derive(lake, k=2)
    assert out["k"] == 2
    assert {"cluster", "machine_tags", "novelty"} <= set(lake.schema().names)
    assert lake.count("cluster == 0") + lake.count("cluster == 1") == lake.count()
    tagged = lake.episodes(columns=["episode_id", "machine_tags", "tags"])
    assert tagged["machine_tags"].list.len().min() == 4  # object, scene, clutter, lighting
    some = tagged["machine_tags"][0][0]
    assert lake.count(f'"{some}" in machine_tags') >= 1
    assert tagged["tags"].list.len().sum() == 0  # human tags untouched


def test_the_audit_covers_every_section_and_its_json_holds_the_numbers(embedded_lake: Path, tmp_path: Path) -> None:
    from curate.report_html import write_report

    lake = Lake(embedded_lake)
    result = run_audit(lake, reference='split != "deploy"', target='split == "deploy"', k=3)
    assert {"coverage", "tags", "language", "duplicates", "actions", "shift"} <= set(result.metrics)
    assert result.metrics["coverage"]["k"] == 3
    assert result.metrics["shift"]["target_episodes"] == lake.count('split == "deploy"')
    html, js = tmp_path / "r.html", tmp_path / "m.json"
    write_report(result, str(html), lake, json_path=str(js))
    page = html.read_text()
    assert "<svg" in page and "data:image/png;base64," in page
    assert "<script" not in page and "src='http" not in page and 'src="http' not in page
    assert json.loads(js.read_text())["coverage"]["episodes"] == lake.count()
