"""Semantic search: text, image or episode-similarity queries over a lake's CLIP vectors, with metadata filters.

The filter language selects the episodes first (a prefilter); the vector search then runs over the keyframe
vectors of those episodes only (exact below `INDEX_MIN_ROWS` rows, IVF-PQ above), and each episode is
scored by its best-matching keyframe, which is returned so the UI can show it.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import polars as pl

from curate.embed import (
    EmbeddingsMissingError,
    ModelMismatchError,
    active_model,
    load_lake_model,
    open_vectors,
)
from curate.errors import ConfigError
from curate.lake import Lake, check_id
from curate.models import ClipModel

PREFILTER_MAX_IDS = 50_000
"""A slice of at most this many episodes is pushed into the vector search as `episode_id IN (...)`;
a larger slice is applied after an over-fetched search (both return only episodes of the slice)."""
RESULT_COLUMNS = ["episode_id", "score", "instruction", "dataset", "camera", "step", "item"]


def query_vector(lake: Lake, *, text: str | None = None, image: Any = None, like: str | None = None,
                 model: ClipModel | None = None, model_id: str | None = None) -> tuple[np.ndarray, str]:
    """The query as a normalised vector, and the row kind it should be compared with."""
    given = [x is not None for x in (text, image, like)]
    if sum(given) != 1:
        raise ConfigError("give exactly one query: TEXT, --image FILE or --like EPISODE_ID")
    model_id = model_id or (model.model_id if model else active_model(lake)["model_id"])
    if like is not None:
        table = open_vectors(lake, model_id)
        rows = table.to_lance().to_table(columns=["vector"], filter=f"kind = 'episode' AND episode_id = "
                                                                     f"'{check_id(like)}'")
        if rows.num_rows == 0:
            lake.episode(like, steps=False)  # raises EpisodeNotFoundError for an unknown id
            raise EmbeddingsMissingError(f"episode {like} has no vectors of {model_id}; run `curate embed`")
        return np.asarray(rows.column("vector").to_pylist()[0], dtype=np.float32), "episode"
    model = model or load_lake_model(lake, model_id)
    if model.model_id != model_id:
        raise ModelMismatchError(f"query model {model.model_id} differs from the vectors' model {model_id}")
    if text is not None:
        if not text.strip():
            raise ConfigError("the search text is empty")
        return model.encode_texts([text])[0], "image"
    from PIL import Image

    if isinstance(image, str | os.PathLike):
        try:
            img = Image.open(image).convert("RGB")
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read image {image}: {exc}") from None
    else:
        img = image.convert("RGB")
    return model.encode_images(model.preprocess(img).unsqueeze(0))[0], "image"


def search(lake: Lake, text: str | None = None, *, image: Any = None, like: str | None = None,
           where: str | None = None, k: int = 10, model: ClipModel | None = None,
           model_id: str | None = None) -> pl.DataFrame:
    """Episodes most similar to a text, an image or another episode, within a filtered slice.

    Args:
        text / image / like: exactly one query (image: a path or PIL image; like: an episode id).
        where: filter-language prefilter (e.g. 'dataset == "bridge"').
        k: episodes to return.

    Returns:
        A frame with RESULT_COLUMNS, best first: score is cosine similarity; camera/step/item name the matching
        keyframe (null for --like, which compares whole episodes).

    Raises:
        EmbeddingsMissingError, ModelMismatchError, ConfigError, FilterError.
    """
    if k < 1:
        raise ConfigError("--k must be at least 1")
    model_id = model_id or (model.model_id if model else active_model(lake)["model_id"])
    vec, kind = query_vector(lake, text=text, image=image, like=like, model=model, model_id=model_id)
    table = open_vectors(lake, model_id)
    dim = table.schema.field("vector").type.list_size
    if vec.shape[0] != dim:
        raise ModelMismatchError(f"query vector has {vec.shape[0]} dims, the vectors of {model_id} have {dim}")
    meta = lake.scan(where=where, columns=["episode_id", "instruction", "dataset"]).collect()
    if meta.height == 0:
        return pl.DataFrame(schema={"episode_id": pl.String, "score": pl.Float64, "instruction": pl.String,
                                    "dataset": pl.String, "camera": pl.String, "step": pl.Int32, "item": pl.String})
    ids = meta["episode_id"].to_list()
    clause = f"kind = '{kind}'"
    prefilter = where is not None and len(ids) <= PREFILTER_MAX_IDS
    if prefilter:
        clause += f" AND episode_id IN ({', '.join(repr(check_id(i)) for i in ids)})"
    if like is not None:
        clause += f" AND episode_id != '{check_id(like)}'"
    per_episode = 1 if kind == "episode" else 8
    fetch = k * per_episode * (1 if prefilter or where is None else 8)
    keep = set(ids)
    while True:
        hits = (table.search(vec, vector_column_name="vector").distance_type("cosine").where(clause, prefilter=True)
                .select(["episode_id", "camera", "step", "item", "_distance"]).limit(fetch).to_polars())
        hits = hits.filter(pl.col("episode_id").is_in(list(keep)))
        best = (hits.with_columns((1.0 - pl.col("_distance")).alias("score")).sort("score", descending=True)
                .unique("episode_id", keep="first", maintain_order=True))
        if best.height >= k or fetch >= table.count_rows():
            break
        fetch *= 4
    best = best.head(k).join(meta, on="episode_id", how="left").sort("score", descending=True)
    if kind == "episode":
        best = best.with_columns(pl.lit(None, dtype=pl.String).alias("camera"), pl.lit(None, dtype=pl.Int32)
                                 .alias("step"), pl.lit(None, dtype=pl.String).alias("item"))
    return best.select(RESULT_COLUMNS)


def results_json(results: pl.DataFrame) -> dict[str, Any]:
    """The `--json` shape: {"results": [{"episode_id", "score", "instruction", "dataset", ...}, ...]}."""
    return {"results": [{**r, "score": round(float(r["score"]), 6)} for r in results.to_dicts()]}
