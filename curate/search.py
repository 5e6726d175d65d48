"""Semantic search: text, image or episode-similarity queries over a lake's CLIP vectors, with metadata filters.

The filter language selects the episodes first (a prefilter); the vector search then runs over the keyframe
vectors of those episodes only (exact below `INDEX_MIN_ROWS` rows, IVF-SQ above), and each episode is
scored by its best-matching keyframe, which is returned so the UI can show it. A filter on `dataset` alone is
evaluated inside Lance on the vector table's own indexed copy of that column (`PUSHDOWN_COLUMNS`), so it costs
no more than an unfiltered query.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
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
from curate.filters import lance_predicate
from curate.lake import Lake, check_id, id_predicate
from curate.models import ClipModel

PREFILTER_MAX_IDS = 50_000
"""A slice of at most this many episodes is pushed into the vector search as `episode_id IN (...)`;
a larger slice is applied after an over-fetched search (both return only episodes of the slice)."""
EXACT_MAX_EPISODES = 4_000
"""A slice of at most this many episodes is searched exactly: its vectors are read through the episode_id index
and compared in NumPy (under a few ms), which is faster than probing the IVF index and has perfect recall."""
NPROBES = 32
"""IVF partitions probed per query (of sqrt(rows), at most 4,096, see `curate.embed.index_partitions`)."""
REFINE_FACTOR = 0
"""Candidates re-ranked with their full vectors, as a multiple of the rows asked for; 0: none. The IVF-SQ index
ranks well enough on its own (recall@10 0.95 at 1M), and a refine reads full vectors at random from disk."""
PQ_REFINE_FACTOR = 4
"""The refine an IVF-PQ index needs for recall@10 0.98 (lakes indexed before IVF-SQ; the next `curate embed`
replaces their index)."""
PUSHDOWN_COLUMNS = frozenset({"dataset"})
"""Episode columns the vector tables carry themselves (immutable: the dataset is part of the episode id), with a
Bitmap index: a filter over only these runs as Lance's own prefilter (`curate.filters.lance_predicate`)."""
RESULT_COLUMNS = ["episode_id", "score", "instruction", "dataset", "camera", "step", "item"]
_HIT_COLUMNS = ["episode_id", "camera", "step", "item"]
_TABLES: dict[tuple[str, str], Any] = {}
_SLICES: dict[tuple[Any, ...], list[str]] = {}
_MODELS: dict[str, ClipModel] = {}
_FACTS: dict[tuple[str, int], TableFacts] = {}
_FACTS_MAX = 8
_WARMED: set[tuple[str, int]] = set()
_SLICES_MAX = 32
_EXACT_ROWS: dict[tuple[Any, ...], tuple[pl.DataFrame, np.ndarray]] = {}
_EXACT_CACHE_BYTES = 256 << 20


def query_vector(lake: Lake, *, text: str | None = None, image: Any = None, like: str | None = None,
                 vector: Any = None, model: ClipModel | None = None,
                 model_id: str | None = None) -> tuple[np.ndarray, str]:
    """The query as a normalised vector, and the row kind it should be compared with."""
    given = [x is not None for x in (text, image, like, vector)]
    if sum(given) != 1:
        raise ConfigError("give exactly one query: TEXT, --image FILE or --like EPISODE_ID")
    if vector is not None:
        vec = np.asarray(vector, dtype=np.float32).reshape(-1)
        norm = float(np.linalg.norm(vec))
        if not np.isfinite(norm) or norm == 0:
            raise ConfigError("the query vector is zero or not finite")
        return vec / norm, "image"
    model_id = model_id or (model.model_id if model else active_model(lake)["model_id"])
    if like is not None:
        rows = _vectors(lake, model_id).to_table(columns=["vector"], filter=f"kind = 'episode' AND episode_id = "
                                                                            f"'{check_id(like)}'")
        if rows.num_rows == 0:
            lake.episode(like, steps=False)  # raises EpisodeNotFoundError for an unknown id
            raise EmbeddingsMissingError(f"episode {like} has no vectors of {model_id}; run `curate embed`")
        return np.asarray(rows.column("vector").to_pylist()[0], dtype=np.float32), "episode"
    model = model or _query_model(lake, model_id)
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


def _query_model(lake: Lake, model_id: str) -> ClipModel:
    """The model that embeds queries, loaded once per process (a ViT-B-32 takes seconds to load; the UI and the
    API call `search` without one). The model id names the weights' content, so a cached model never serves
    vectors of other weights."""
    model = _MODELS.get(model_id)
    if model is None:
        _MODELS.clear()
        model = _MODELS[model_id] = load_lake_model(lake, model_id)
    return model


def warm(lake: Lake, model_id: str | None = None, *, background: bool = False) -> bool:
    """Load the model's vector index into Lance's index cache now, once per table version, so the first queries
    of a long-lived process (the UI, a service) do not each read index partitions from disk.

    Costs the index's size in memory (512 bytes per vector: 0.5 GB at 1M vectors, 5 GB at 10M) and, at 10M, about
    a minute and a half; the CLI does not call it. With `background`, the load runs on a daemon thread and queries
    go on meanwhile (the UI: its first search must not wait for the whole index). Returns False when the table has
    no vector index (small tables are searched exactly).
    """
    ds = _vectors(lake, model_id or active_model(lake)["model_id"])
    facts = table_facts(ds)
    key = (ds.uri, ds.version)
    if facts.vector_indexes and key not in _WARMED:
        _WARMED.add(key)

        def load() -> None:
            for name in facts.vector_indexes:
                ds.prewarm_index(name)

        if background:
            threading.Thread(target=load, name="curate-warm-index", daemon=True).start()
        else:
            load()
    return bool(facts.vector_indexes)


def _vectors(lake: Lake, model_id: str) -> Any:
    """The model's vector table as a Lance dataset, opened once per process and moved to its newest version on
    each call (checking costs microseconds; a checkout keeps the dataset's session, so the IVF partitions
    already in its index cache stay there)."""
    key = (lake.uri, model_id)
    ds = _TABLES.get(key)
    if ds is None:
        ds = _TABLES[key] = open_vectors(lake, model_id).to_lance()
    else:
        latest = ds.latest_version
        if latest != ds.version:
            ds = _TABLES[key] = ds.checkout_version(latest)
    return ds


def _slice_ids(lake: Lake, where: str) -> list[str]:
    """Episode ids matching `where`, remembered per lake snapshot (episodes, labels and derived versions), so a
    session searching one slice with many queries filters the lake once."""
    derived = lake.table("derived")
    key = (lake.uri, lake.version, lake.labels_version, derived.version if derived is not None else 0, where)
    ids = _SLICES.get(key)
    if ids is None:
        ids = lake.scan(where=where, columns=["episode_id"]).collect()["episode_id"].to_list()
        if len(_SLICES) >= _SLICES_MAX:
            _SLICES.pop(next(iter(_SLICES)))
        _SLICES[key] = ids
    return ids


def _exact(ds: Any, vec: np.ndarray, clause: str) -> pl.DataFrame:
    """Every row matching `clause` scored by cosine similarity: brute force over a small prefiltered set.

    The rows and their unit vectors are remembered per table version and clause (up to `_EXACT_CACHE_BYTES`), so
    further queries over the same slice are a matrix-vector product."""
    key = (ds.uri, ds.version, clause)
    cached = _EXACT_ROWS.get(key)
    if cached is None:
        rows = ds.to_table(columns=[*_HIT_COLUMNS, "vector"], filter=clause)
        hits = pl.from_arrow(rows.drop(["vector"]))
        assert isinstance(hits, pl.DataFrame)
        matrix = np.zeros((0, vec.shape[0]), dtype=np.float32)
        if rows.num_rows:
            matrix = rows.column("vector").combine_chunks().values.to_numpy(zero_copy_only=False)
            matrix = matrix.reshape(rows.num_rows, -1).astype(np.float32)
            norms = np.linalg.norm(matrix, axis=1, keepdims=True)
            matrix /= np.where(norms > 0, norms, 1.0)
        while _EXACT_ROWS and sum(m.nbytes for _, m in _EXACT_ROWS.values()) + matrix.nbytes > _EXACT_CACHE_BYTES:
            _EXACT_ROWS.pop(next(iter(_EXACT_ROWS)))
        cached = _EXACT_ROWS[key] = (hits, matrix)
    hits, matrix = cached
    if hits.height == 0:
        return hits.with_columns(pl.lit(None, dtype=pl.Float64).alias("score"))
    return hits.with_columns(pl.Series("score", (matrix @ vec).astype(np.float64)))


@dataclass(frozen=True)
class TableFacts:
    """What search needs to know of one version of a vector table, read once per version.

    coverage: "full" when the vector index covers every fragment, "partial" when rows were added since it was built
    (Lance searches those exhaustively), "none" without an index.
    """

    rows: int
    coverage: str
    index_type: str | None
    vector_indexes: tuple[str, ...]


def table_facts(ds: Any) -> TableFacts:
    """The `TableFacts` of this version of a vector table (remembered for the last `_FACTS_MAX` versions)."""
    key = (ds.uri, ds.version)
    facts = _FACTS.get(key)
    if facts is None:
        covered: set[int] = set()
        kind, names = None, []
        for ix in ds.describe_indices():
            if list(ix.field_names) == ["vector"]:
                kind = ix.index_type
                names.append(ix.name)
                covered.update(f for seg in ix.segments for f in seg.fragment_ids)
        fragments = {f.fragment_id for f in ds.get_fragments()}
        coverage = "none" if not covered else "full" if fragments <= covered else "partial"
        if len(_FACTS) >= _FACTS_MAX:
            _FACTS.pop(next(iter(_FACTS)))
        facts = _FACTS[key] = TableFacts(rows=ds.count_rows(), coverage=coverage, index_type=kind,
                                         vector_indexes=tuple(names))
    return facts


def _ann(ds: Any, vec: np.ndarray, clause: str, limit: int) -> pl.DataFrame:
    """The `limit` nearest rows matching `clause` (IVF-SQ with a prefilter once indexed, exact before).

    Straight through pylance rather than LanceDB's query builder: the same plan, ~3 ms less per query. Lance
    reports cosine distance (1 - cos) from an exhaustive search but the squared L2 distance of the normalised
    vectors (2 - 2 cos) from the index, so the score is converted by where the distances came from; when only
    part of the table is indexed, a refine of the returned rows gives exact cosine distances for all of them.
    """
    facts = table_facts(ds)
    coverage = facts.coverage
    nearest: dict[str, Any] = {"column": "vector", "q": vec, "k": limit, "metric": "cosine", "nprobes": NPROBES}
    refine = REFINE_FACTOR or (1 if coverage == "partial" else 0)
    if coverage != "none" and facts.index_type != "IVF_SQ":
        refine = max(refine, PQ_REFINE_FACTOR)  # an index built by an older curate, until `curate embed` rebuilds it
    if refine:
        nearest["refine_factor"] = refine
    rows = ds.to_table(columns=[*_HIT_COLUMNS, "_distance"], nearest=nearest, filter=clause, prefilter=True)
    hits = pl.from_arrow(rows)
    assert isinstance(hits, pl.DataFrame)
    distance = pl.col("_distance") / 2 if coverage == "full" and not refine else pl.col("_distance")
    return hits.with_columns((1.0 - distance).cast(pl.Float64).alias("score")).drop("_distance")


def _best_per_episode(hits: pl.DataFrame) -> pl.DataFrame:
    return hits.sort("score", descending=True).unique("episode_id", keep="first", maintain_order=True)


def search(lake: Lake, text: str | None = None, *, image: Any = None, like: str | None = None,
           vector: Any = None, where: str | None = None, episode_ids: list[str] | None = None, k: int = 10,
           model: ClipModel | None = None, model_id: str | None = None) -> pl.DataFrame:
    """Episodes most similar to a text, an image, another episode or a vector, within a filtered slice.

    Args:
        text / image / like / vector: exactly one query (image: a path or PIL image; like: an episode id;
            vector: a query embedding of the model's dimension, compared with keyframe vectors).
        where: filter-language prefilter (e.g. 'dataset == "bridge"').
        episode_ids: restrict the search to these episodes (e.g. a selection in the UI); combines with `where`.
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
    vec, kind = query_vector(lake, text=text, image=image, like=like, vector=vector, model=model, model_id=model_id)
    table = _vectors(lake, model_id)
    dim = table.schema.field("vector").type.list_size
    if vec.shape[0] != dim:
        raise ModelMismatchError(f"query vector has {vec.shape[0]} dims, the vectors of {model_id} have {dim}")
    clause = f"kind = '{kind}'"
    if like is not None:
        clause += f" AND episode_id != '{check_id(like)}'"
    pushed = lance_predicate(where, PUSHDOWN_COLUMNS) if where is not None and where.strip() else None
    if pushed is not None:
        clause += f" AND {pushed}"
    ids = _slice_ids(lake, where) if where is not None and pushed is None else None
    if episode_ids is not None:
        chosen = [check_id(e) for e in dict.fromkeys(episode_ids)]
        ids = chosen if ids is None else [e for e in chosen if e in set(ids)]
    if ids is not None and not ids:
        return _empty()
    if ids is not None and len(ids) <= EXACT_MAX_EPISODES:
        best = _best_per_episode(_exact(table, vec, f"{clause} AND {id_predicate('episode_id', ids)}")).head(k)
        return _finish(lake, best, kind, k)
    prefilter = ids is not None and len(ids) <= PREFILTER_MAX_IDS
    if prefilter:
        clause += f" AND {id_predicate('episode_id', ids or [])}"
    keep = set(ids) if ids is not None and not prefilter else None
    per_episode = 1 if kind == "episode" else 8
    total = table_facts(table).rows
    share = 1.0 if keep is None else max(len(keep) / max(lake.table("episodes").count_rows(), 1), 1e-4)
    fetch = min(total, int(k * per_episode / share))
    while True:
        hits = _ann(table, vec, clause, fetch)
        if keep is not None:
            hits = hits.filter(pl.col("episode_id").is_in(list(keep)))
        best = _best_per_episode(hits)
        if best.height >= k or fetch >= total:
            break
        fetch = min(total, fetch * 4)
    return _finish(lake, best, kind, k)


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema={"episode_id": pl.String, "score": pl.Float64, "instruction": pl.String,
                                "dataset": pl.String, "camera": pl.String, "step": pl.Int32, "item": pl.String})


def _finish(lake: Lake, best: pl.DataFrame, kind: str, k: int) -> pl.DataFrame:
    """The top k episodes that are in the lake, with their current instruction and dataset."""
    top = best.head(k)
    if top.height == 0:
        return _empty()
    meta = lake.rows(top["episode_id"].to_list(), columns=["episode_id", "instruction", "dataset"])
    out = top.join(meta, on="episode_id", how="inner").sort("score", descending=True)
    if kind == "episode":
        out = out.with_columns(pl.lit(None, dtype=pl.String).alias("camera"), pl.lit(None, dtype=pl.Int32)
                               .alias("step"), pl.lit(None, dtype=pl.String).alias("item"))
    return out.select(RESULT_COLUMNS).cast({"step": pl.Int32, "score": pl.Float64})


def results_json(results: pl.DataFrame) -> dict[str, Any]:
    """The `--json` shape: {"results": [{"episode_id", "score", "instruction", "dataset", ...}, ...]}."""
    return {"results": [{**r, "score": round(float(r["score"]), 6)} for r in results.to_dicts()]}
