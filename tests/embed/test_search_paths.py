"""Search paths (exact over a small slice, vector search over the rest), the vector query, the slice cache, and the
embedding helpers they rely on (trimmed text encoding, text dedupe, shared vector rows)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
import torch

from curate import search as search_module
from curate.embed import _maybe_index, active_model, encode_texts_cached, load_lake_model, open_vectors, vector_rows
from curate.errors import ConfigError
from curate.lake import Lake
from curate.models import load_model
from curate.search import search


def test_a_vector_query_ranks_like_the_text_it_encodes(embedded_lake: Path) -> None:
    lake = Lake(embedded_lake)
    model = load_lake_model(lake)
    by_text = search(lake, "red cube", k=6, model=model)
    by_vector = search(lake, vector=model.encode_texts(["red cube"])[0] * 3.0, k=6)
    assert by_vector["episode_id"].to_list() == by_text["episode_id"].to_list()
    assert np.allclose(by_vector["score"].to_numpy(), by_text["score"].to_numpy(), atol=1e-5)


def test_a_zero_vector_or_two_queries_are_clear_errors(embedded_lake: Path) -> None:
    lake = Lake(embedded_lake)
    with pytest.raises(ConfigError, match="zero"):
        search(lake, vector=np.zeros(active_model(lake)["dim"]))
    with pytest.raises(ConfigError, match="exactly one query"):
        search(lake, "red cube", vector=np.ones(active_model(lake)["dim"]))


def test_exact_search_over_a_small_slice_scores_every_episode_like_the_full_search(embedded_lake: Path) -> None:
    lake = Lake(embedded_lake)
    everything = search(lake, "a cube", k=lake.count())
    slice_ids = lake.episodes(where='dataset == "deploy_kitchen"', columns=["episode_id"])["episode_id"].to_list()
    assert 0 < len(slice_ids) <= search_module.EXACT_MAX_EPISODES
    exact = search(lake, "a cube", where='dataset == "deploy_kitchen"', k=len(slice_ids))
    expected = everything.filter(pl.col("episode_id").is_in(slice_ids))
    assert exact["episode_id"].to_list() == expected["episode_id"].to_list()
    assert np.allclose(exact["score"].to_numpy(), expected["score"].to_numpy(), atol=1e-5)
    assert exact["item"].to_list() == expected["item"].to_list()


def test_episode_ids_restrict_the_search_and_combine_with_the_filter(embedded_lake: Path) -> None:
    lake = Lake(embedded_lake)
    ids = lake.episodes(columns=["episode_id"])["episode_id"].to_list()[:5]
    res = search(lake, "a cube", episode_ids=ids, k=10)
    assert sorted(res["episode_id"].to_list()) == sorted(ids)
    dataset = lake.rows(ids[:1], columns=["dataset"])["dataset"][0]
    both = search(lake, "a cube", episode_ids=ids, where=f'dataset == "{dataset}"', k=10)
    assert set(both["dataset"].to_list()) == {dataset} and set(both["episode_id"].to_list()) <= set(ids)


def test_a_large_slice_goes_through_the_vector_search_and_stays_in_the_slice(embedded_lake: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    lake = Lake(embedded_lake)
    where = 'dataset != "deploy_kitchen" and n_steps > 0'  # reads a lake column: resolved to episode ids
    exact = search(lake, "a cube", where=where, k=5)
    monkeypatch.setattr(search_module, "EXACT_MAX_EPISODES", 0)
    prefiltered = search(lake, "a cube", where=where, k=5)
    monkeypatch.setattr(search_module, "PREFILTER_MAX_IDS", 0)
    postfiltered = search(lake, "a cube", where=where, k=5)
    assert prefiltered["episode_id"].to_list() == exact["episode_id"].to_list()
    assert postfiltered["episode_id"].to_list() == exact["episode_id"].to_list()
    assert "deploy_kitchen" not in set(postfiltered["dataset"].to_list())


def test_a_relabel_is_seen_by_the_next_search_with_the_same_filter(embedded_lake: Path) -> None:
    lake = Lake(embedded_lake)
    where = '"searchme" in tags'
    assert search(lake, "a cube", where=where).height == 0
    eid = lake.episodes(limit=1, columns=["episode_id"])["episode_id"][0]
    lake.relabel([eid], "tags", ["searchme"], author="test")
    assert search(Lake(embedded_lake), "a cube", where=where)["episode_id"].to_list() == [eid]


def test_trimmed_text_encoding_equals_open_clips_encode_text(tiny_checkpoint: Path) -> None:
    model = load_model(pretrained=str(tiny_checkpoint), device="cpu")
    texts = ["red cube", "could you put the green cube left of the blue bowl into the box?", "x"]
    with torch.no_grad():
        reference = model.model.encode_text(model.tokenizer(texts), normalize=True).numpy()
    assert np.allclose(model.encode_texts(texts), reference, atol=1e-5)


def test_each_distinct_text_is_encoded_once(tiny_checkpoint: Path) -> None:
    model = load_model(pretrained=str(tiny_checkpoint), device="cpu")
    calls: list[list[str]] = []
    encode = model.encode_texts

    def counting(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return encode(texts)

    model.encode_texts = counting  # type: ignore[method-assign]
    cache: dict[str, np.ndarray] = {}
    first = encode_texts_cached(model, ["a", "b", "a"], cache)
    second = encode_texts_cached(model, ["b", "c"], cache)
    assert calls == [["a", "b"], ["c"]]
    assert np.array_equal(first[0], first[2]) and np.array_equal(first[1], second[0])
    assert encode_texts_cached(model, [], cache).shape == (0, model.dim)


def test_a_full_text_cache_is_cleared_without_losing_the_texts_of_the_call(tiny_checkpoint: Path) -> None:
    """The 1M benchmark (over 100k distinct instructions) failed here with a KeyError: the cache was cleared after
    the call had counted some of its texts as cached."""
    model = load_model(pretrained=str(tiny_checkpoint), device="cpu")
    cache: dict[str, np.ndarray] = {}
    encode_texts_cached(model, ["a", "b", "c"], cache, max_size=4)
    out = encode_texts_cached(model, ["a", "d", "e"], cache, max_size=4)  # "a" cached, 2 new: over the limit
    assert np.allclose(out, model.encode_texts(["a", "d", "e"]), atol=1e-6)
    assert set(cache) == {"a", "d", "e"}


def test_vector_rows_fall_back_to_texts_and_report_an_episode_with_nothing() -> None:
    rows = [{"episode_id": e, "key": "k", "dataset": "d"} for e in ("ep_a", "ep_b", "ep_c")]
    img = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    txt = np.array([[0.6, 0.8]], dtype=np.float32)
    errors: list[str] = []
    out = vector_rows(rows, [("ep_a", 0, "front"), ("ep_a", 9, "front")], img,
                      [(rows[1], "instruction", "instruction", "go")], txt, errors)
    episodes = {r["episode_id"]: r["vector"] for r in out if r["kind"] == "episode"}
    assert np.allclose(episodes["ep_a"], [np.sqrt(0.5), np.sqrt(0.5)]) and np.allclose(episodes["ep_b"], [0.6, 0.8])
    assert "ep_c" not in episodes and errors == ["ep_c: no keyframe and no text to embed"]
    assert [r["item"] for r in out if r["kind"] == "image"] == ["front@0", "front@9"]


@pytest.mark.parametrize("where", ['dataset != "deploy_kitchen"', 'dataset in ["deploy_kitchen", "tabletop_franka"]',
                                   'not (dataset == "deploy_kitchen" or dataset == "nope")'])
def test_a_dataset_filter_runs_inside_lance_and_finds_what_the_general_path_finds(
        embedded_lake: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    lake = Lake(embedded_lake)
    monkeypatch.setattr(search_module, "EXACT_MAX_EPISODES", 0)  # the vector-search path, not the exact one
    monkeypatch.setattr(search_module, "PUSHDOWN_COLUMNS", frozenset())
    general = search(lake, "a cube", where=where, k=8)
    monkeypatch.setattr(search_module, "PUSHDOWN_COLUMNS", frozenset({"dataset"}))
    expected = set(lake.episodes(where=where, columns=["episode_id"])["episode_id"].to_list())

    def no_slice(*_: object) -> None:
        raise AssertionError("a dataset filter should not be resolved to episode ids")

    monkeypatch.setattr(search_module, "_slice_ids", no_slice)
    pushed = search(lake, "a cube", where=where, k=8)
    assert pushed["episode_id"].to_list() == general["episode_id"].to_list()
    assert set(pushed["episode_id"].to_list()) <= expected and pushed.height == min(8, len(expected))
    assert search(lake, "a cube", where='dataset == "it\'s not there"').height == 0
    hostile = 'dataset == "x\' OR kind = \'image" or dataset in ["\') OR (1 = 1"]'
    assert search(lake, "a cube", where=hostile).height == 0


def test_an_indexed_table_is_searched_through_ivf_sq_and_warmed(embedded_lake: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    lake = Lake(embedded_lake)
    model_id = active_model(lake)["model_id"]
    assert search_module.warm(lake) is False  # small tables have no vector index: searched exactly
    exact = search(lake, "a cube", k=5)
    table = open_vectors(lake, model_id)
    assert _maybe_index(table, min_rows=0)
    kinds = {ix.field_names[0]: ix.index_type for ix in table.to_lance().describe_indices()}
    assert kinds == {"vector": "IVF_SQ", "episode_id": "BTree", "kind": "Bitmap", "dataset": "Bitmap"}
    assert search_module.warm(lake) is True
    search_module._WARMED.clear()
    assert search_module.warm(lake, background=True) is True  # the UI's call: the search below does not wait
    monkeypatch.setattr(search_module, "EXACT_MAX_EPISODES", 0)
    ann = search(lake, "a cube", k=5)
    assert len(set(ann["episode_id"].to_list()) & set(exact["episode_id"].to_list())) >= 4
    assert np.allclose(ann["score"].to_numpy(), exact["score"].to_numpy(), atol=0.05)
    for thread in threading.enumerate():
        if thread.name == "curate-warm-index":
            thread.join(timeout=60)
    narrowed = search(lake, "a cube", where='dataset == "deploy_kitchen"', k=50)
    assert set(narrowed["dataset"].to_list()) == {"deploy_kitchen"}
    # rows added after the index was built (before `curate embed` folds them in): scores stay exact cosines
    extra = table.to_lance().to_table(filter="kind = 'image'", limit=3)
    table.add(extra.set_column(0, "episode_id", pa.array(["ep_not_in_the_lake"] * 3)))
    partial = search(lake, "a cube", k=5)
    assert np.allclose(partial["score"].to_numpy(), exact["score"].to_numpy(), atol=1e-5)
