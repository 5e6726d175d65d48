"""Embed a lake: CLIP vectors of keyframes (per episode and camera) and of every instruction and segment text.

Vectors live in `<lake>/vectors_<model_id>.lance` (a LanceDB table), so two models coexist and can be compared.
Each row carries the episode's content key (source fingerprint + its texts), so a re-run embeds only new or
changed episodes. Frames are read and decoded by a pool of threads that stay a few batches ahead of the model,
so the model never waits on I/O; on a GPU the forward pass runs in fp16.

Rows (`kind`): `image` (one keyframe of one camera), `instruction`, `alt` (alternative instruction),
`segment` (segment text), and `episode` (the normalised mean of the episode's image vectors: what clustering,
duplicates, shift and `search --like` compare).
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from curate.errors import ConfigError, CurateError
from curate.lake import Lake, check_id
from curate.models import ClipModel, forward_threads, load_model

Progress = Callable[[str, int, int], None]
REGISTRY = "embeddings.json"
INDEX_MIN_ROWS = 100_000
"""Below this many rows search is exact (brute force is faster than probing an index); above, IVF-SQ."""
KINDS = ("image", "instruction", "alt", "segment", "episode")


class EmbeddingsMissingError(CurateError):
    """The lake (or slice) has no vectors for the model asked for: run `curate embed` first."""

    exit_code = 9


class ModelMismatchError(CurateError):
    """Vectors of one model compared with a query or table of another (different id or dimension)."""

    exit_code = 9


@dataclass
class EmbedReport:
    """What one `embed_lake` call did."""

    model_id: str
    episodes_seen: int = 0
    episodes_embedded: int = 0
    episodes_skipped: int = 0
    images: int = 0
    texts: int = 0
    rows_deleted: int = 0
    seconds: float = 0.0
    images_per_s: float = 0.0
    errors: list[str] = field(default_factory=list)


def table_name(model_id: str) -> str:
    return f"vectors_{model_id}"


def vectors_schema(dim: int) -> pa.Schema:
    return pa.schema([
        pa.field("episode_id", pa.string(), nullable=False),
        pa.field("key", pa.string(), nullable=False),
        pa.field("dataset", pa.string()),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("item", pa.string(), nullable=False),
        pa.field("camera", pa.string()),
        pa.field("step", pa.int32()),
        pa.field("text", pa.string()),
        pa.field("vector", pa.list_(pa.float32(), dim)),
    ])


def keyframe_indices(n_steps: int, policy: str = "first,middle,last") -> list[int]:
    """Step indices of the keyframes: named positions (first, middle, last), fractions (0.25) or `every:N`."""
    if n_steps <= 0:
        return []
    if policy.startswith("every:"):
        step = max(1, int(policy.split(":", 1)[1]))
        return list(range(0, n_steps, step))
    out: list[int] = []
    for part in (p.strip() for p in policy.split(",") if p.strip()):
        if part == "first":
            out.append(0)
        elif part == "middle":
            out.append(n_steps // 2)
        elif part == "last":
            out.append(n_steps - 1)
        else:
            try:
                frac = float(part)
            except ValueError:
                raise ConfigError(f"keyframe position {part!r} is not first/middle/last, a fraction or every:N") \
                    from None
            if not 0 <= frac <= 1:
                raise ConfigError(f"keyframe fraction {frac} must be within [0, 1]")
            out.append(min(n_steps - 1, round(frac * (n_steps - 1))))
    return sorted(set(out))


# ------------------------------------------------------------------------------------------------- registry
def read_registry(lake: Lake) -> dict[str, Any]:
    """`<lake>/embeddings.json`: the models with vectors in this lake and which one is active."""
    return lake.read_json(REGISTRY) or {"active": None, "models": {}}


def _write_registry(lake: Lake, registry: dict[str, Any]) -> None:
    lake.write_json(REGISTRY, registry)


def register_model(lake: Lake, model: ClipModel, *, activate: bool = True) -> None:
    registry = read_registry(lake)
    entry = registry["models"].get(model.model_id, {})
    entry.update({"arch": model.arch, "pretrained": model.pretrained, "dim": model.dim,
                  "updated_at": datetime.now(UTC).isoformat(), "trained_on": model.info.get("trained_on")})
    registry["models"][model.model_id] = entry
    if activate or not registry.get("active"):
        registry["active"] = model.model_id
    _write_registry(lake, registry)


def active_model(lake: Lake) -> dict[str, Any]:
    """Which CLIP the lake's vectors, clusters and tags come from: {"model_id", "arch", "pretrained", ...}.

    Raises:
        EmbeddingsMissingError: nothing was embedded yet.
    """
    registry = read_registry(lake)
    active = registry.get("active")
    if not active:
        raise EmbeddingsMissingError(f"lake {lake.uri} has no embeddings yet; run `curate embed --lake {lake.uri}`")
    return {"model_id": active, **registry["models"].get(active, {})}


def load_lake_model(lake: Lake, model_id: str | None = None, *, device: str = "auto") -> ClipModel:
    """Load the model whose vectors are in the lake (the active one by default), to embed queries."""
    info = active_model(lake) if model_id is None else {"model_id": model_id,
                                                         **read_registry(lake)["models"].get(model_id, {})}
    if "arch" not in info:
        known = ", ".join(read_registry(lake)["models"]) or "none"
        raise ModelMismatchError(f"lake {lake.uri} has no vectors of model {model_id!r} (it has: {known})")
    model = load_model(info["arch"], info.get("pretrained"), device=device, allow_random=info.get("pretrained") is None)
    if model.model_id != info["model_id"]:
        raise ModelMismatchError(f"the weights at {info.get('pretrained')} changed since the lake was embedded "
                                 f"(now {model.model_id}, vectors are {info['model_id']}); re-run `curate embed`")
    return model


def open_vectors(lake: Lake, model_id: str) -> Any:
    """The LanceDB table of a model's vectors. Raises EmbeddingsMissingError if absent."""
    import lancedb

    db = lancedb.connect(lake.uri, storage_options=lake.storage_options or None)
    name = table_name(model_id)
    try:
        return db.open_table(name)
    except (ValueError, FileNotFoundError, OSError, RuntimeError):
        raise EmbeddingsMissingError(f"lake {lake.uri} has no vectors of model {model_id}; run "
                                     f"`curate embed --lake {lake.uri}`") from None


# ------------------------------------------------------------------------------------------------- embedding
def _content_key(fingerprint: str | None, texts: list[str], policy: str) -> str:
    h = hashlib.sha256((fingerprint or "").encode())
    for t in [policy, *texts]:
        h.update(b"\x00" + t.encode())
    return h.hexdigest()[:24]


def _episode_texts(row: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(kind, item, text) of every instruction, alternative and segment text of one episode."""
    out = []
    if row.get("instruction"):
        out.append(("instruction", "instruction", row["instruction"]))
    for i, alt in enumerate(row.get("instructions_alt") or []):
        if alt:
            out.append(("alt", f"alt:{i}", alt))
    for i, seg in enumerate(row.get("segments") or []):
        if seg and seg.get("text"):
            out.append(("segment", f"segment:{i}", seg["text"]))
    return out


def _rgb_cameras(row: dict[str, Any]) -> list[str] | None:
    cams = row.get("cameras") or []
    names = [c["name"] for c in cams if (c.get("kind") or "rgb") == "rgb"]
    return names or None


def plan(lake: Lake, *, model_id: str, where: str | None = None,
         keyframes: str = "first,middle,last") -> tuple[pl.DataFrame, list[str]]:
    """(episodes to embed with their content keys, ids whose stored vectors are stale or orphaned)."""
    cols = ["episode_id", "revision", "dataset", "source", "n_steps", "cameras", "instruction", "instructions_alt",
            "segments"]
    eps = lake.scan(where=where, columns=cols).collect()
    keys = []
    for row in eps.iter_rows(named=True):
        texts = [t for _, _, t in _episode_texts(row)]
        keys.append(_content_key((row.get("source") or {}).get("fingerprint"), texts, keyframes))
    eps = eps.with_columns(pl.Series("key", keys, dtype=pl.String))
    try:
        table = open_vectors(lake, model_id)
        stored = pl.from_arrow(table.to_lance().to_table(columns=["episode_id", "key"], filter="kind = 'episode'"))
        assert isinstance(stored, pl.DataFrame)
    except EmbeddingsMissingError:
        stored = pl.DataFrame(schema={"episode_id": pl.String, "key": pl.String})
    merged = eps.join(stored.rename({"key": "stored_key"}), on="episode_id", how="left")
    # `replaces`: the episode has older vectors to drop after its new ones land; a first embedding deletes nothing
    todo = (merged.filter(pl.col("stored_key").is_null() | (pl.col("stored_key") != pl.col("key")))
            .with_columns(pl.col("stored_key").is_not_null().alias("replaces")).drop("stored_key"))
    stale: list[str] = []
    if where is None:
        present = set(eps["episode_id"].to_list())
        stale = [e for e in stored["episode_id"].to_list() if e not in present]
    return todo, stale


def _load_batch(lake: Lake, rows: list[dict[str, Any]], model: ClipModel, policy: str) -> dict[str, Any]:
    """Read, decode and preprocess the keyframes of some episodes (runs in a worker thread)."""
    import torch

    from curate.media import decode_frame
    from schemas import Frame

    wanted = []
    for row in rows:
        for idx in keyframe_indices(int(row["n_steps"] or 0), policy):
            wanted.append((row["episode_id"], idx))
    table = lake.read_frames(wanted, columns=["episode_id", "index", "camera", "format", "data", "video_uri",
                                              "video_timestamp_s"],
                             revisions=[r["revision"] for r in rows])  # rows come from `plan`
    allowed = {row["episode_id"]: _rgb_cameras(row) for row in rows}
    tensors, meta, errors = [], [], []
    for r in table.to_pylist():
        cams = allowed.get(r["episode_id"])
        if cams is not None and r["camera"] not in cams:
            continue
        try:
            frame = Frame(camera=r["camera"], format=r["format"], data=r["data"], video_uri=r.get("video_uri"),
                          video_timestamp_s=r.get("video_timestamp_s"))
            img = decode_frame(frame)
        except Exception as exc:  # one unreadable frame never stops an embedding run
            errors.append(f"{r['episode_id']} step {r['index']} camera {r['camera']}: {exc}")
            continue
        tensors.append(model.preprocess(img))
        meta.append((r["episode_id"], int(r["index"]), r["camera"]))
    batch = torch.stack(tensors) if tensors else None
    return {"rows": rows, "images": batch, "meta": meta, "errors": errors}


def _prefetch(lake: Lake, chunks: list[list[dict[str, Any]]], model: ClipModel, policy: str,
              workers: int) -> Iterator[dict[str, Any]]:
    """Yield loaded chunks in order while `workers` threads keep up to 2*workers chunks ahead."""
    out: queue.Queue[Any] = queue.Queue(maxsize=max(2, 2 * workers))
    stop = threading.Event()

    def produce() -> None:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="curate-decode") as pool:
            pending = []
            for chunk in chunks:
                if stop.is_set():
                    break
                pending.append(pool.submit(_load_batch, lake, chunk, model, policy))
                if len(pending) >= 2 * workers:
                    out.put(pending.pop(0))
            for fut in pending:
                out.put(fut)
        out.put(None)

    thread = threading.Thread(target=produce, daemon=True, name="curate-prefetch")
    thread.start()
    try:
        while (fut := out.get()) is not None:
            yield fut.result()
    finally:
        stop.set()


def _rebatch(loaded: Iterator[dict[str, Any]], model: ClipModel, batch: int,
             timer: list[float]) -> Iterator[tuple[dict[str, Any], np.ndarray]]:
    """(chunk, its image vectors) in order, with every forward pass over exactly `batch` images (the last one
    smaller): chunks hold whole episodes, so their image counts vary, but the model is fastest at the batch size
    it was asked for. `timer[0]` accumulates the forward time."""
    import torch

    waiting: list[dict[str, Any]] = []  # chunks whose images are not all encoded yet
    images: list[Any] = []  # image tensors not encoded yet, in chunk order
    vectors: list[np.ndarray] = []  # vectors encoded but not yet handed out, in chunk order

    def forward(n: int) -> None:
        nonlocal images
        t0 = time.perf_counter()
        stacked = torch.cat(images, 0) if len(images) > 1 else images[0]
        vectors.extend(model.encode_images(stacked[:n]))
        timer[0] += time.perf_counter() - t0
        images = [stacked[n:]] if stacked.shape[0] > n else []

    def ready() -> Iterator[tuple[dict[str, Any], np.ndarray]]:
        while waiting and len(vectors) >= len(waiting[0]["meta"]):
            chunk = waiting.pop(0)
            n = len(chunk["meta"])
            out = np.stack(vectors[:n]) if n else np.zeros((0, model.dim), dtype=np.float32)
            del vectors[:n]
            yield chunk, out

    for chunk in loaded:
        waiting.append(chunk)
        if chunk["images"] is not None:
            images.append(chunk["images"])
        while sum(t.shape[0] for t in images) >= batch:
            forward(batch)
        yield from ready()
    while images:
        forward(batch)
    yield from ready()


def embed_lake(lake: Lake, *, model: ClipModel | None = None, arch: str | None = None, pretrained: str | None = None,
               device: str = "auto", batch: int = 64, where: str | None = None,
               keyframes: str = "first,middle,last", workers: int = 2, activate: bool = True,
               progress: Progress | None = None) -> EmbedReport:
    """Embed new or changed episodes of `lake` (optionally a filtered slice) with a CLIP model.

    Args:
        model: an already loaded model; else one is loaded from `arch` + `pretrained`.
        batch: images per forward pass (episodes are grouped so a batch holds about this many images).
        keyframes: which steps to embed (see `keyframe_indices`).
        workers: decoding threads.
        activate: make this model the lake's active one (what clusters, tags and the UI use).

    Returns:
        An EmbedReport (counts, images/s).
    """
    lake.require_writable()
    if batch < 1:
        raise ConfigError("--batch must be at least 1")
    keyframe_indices(3, keyframes)  # validate the policy before any work
    started = time.perf_counter()
    model = model or load_model(arch, pretrained if pretrained is not None else None, device=device)
    report = EmbedReport(model_id=model.model_id)
    todo, stale = plan(lake, model_id=model.model_id, where=where, keyframes=keyframes)
    report.episodes_seen = todo.height
    import lancedb

    db = lancedb.connect(lake.uri, storage_options=lake.storage_options or None)
    name = table_name(model.model_id)
    schema = vectors_schema(model.dim)
    table = db.create_table(name, schema=schema, exist_ok=True)
    if table.schema.field("vector").type != schema.field("vector").type:
        raise ModelMismatchError(f"{name} holds vectors of another dimension than {model.model_id} ({model.dim})")
    if stale:
        report.rows_deleted += _delete(table, stale)
    rows = todo.to_dicts()
    steps = int(np.median([r["n_steps"] or 1 for r in rows] or [1]))
    cams = int(np.median([len(_rgb_cameras(r) or [None]) for r in rows] or [1]))
    per_ep = max(1, len(keyframe_indices(max(1, steps), keyframes)) * cams)  # images per episode, roughly
    chunk_size = max(1, batch // per_ep)
    chunks = [rows[i:i + chunk_size] for i in range(0, len(rows), chunk_size)]
    done = 0
    pending_rows: list[dict[str, Any]] = []
    pending_ids: dict[str, str] = {}  # episodes whose older rows go once their new rows are in
    replacing = {r["episode_id"] for r in rows if r["replaces"]}
    text_cache: dict[str, np.ndarray] = {}
    with forward_threads(model):  # small models run faster on one thread next to the decoders
        timer = [0.0]
        for loaded, img_vecs in _rebatch(_prefetch(lake, chunks, model, keyframes, workers), model, batch, timer):
            texts = [(r, kind, item, text) for r in loaded["rows"] for kind, item, text in _episode_texts(r)]
            txt_vecs = encode_texts_cached(model, [t for *_, t in texts], text_cache)
            errors: list[str] = []
            chunk_rows = vector_rows(loaded["rows"], loaded["meta"], img_vecs, texts, txt_vecs, errors)
            pending_rows.extend(chunk_rows)
            pending_ids.update({r["episode_id"]: r["key"] for r in chunk_rows
                                if r["kind"] == "episode" and r["episode_id"] in replacing})
            report.errors.extend(errors)
            report.images += len(loaded["meta"])
            report.texts += len(texts)
            report.errors.extend(loaded["errors"])
            done += len(loaded["rows"])
            if len(pending_rows) >= 4096:
                report.rows_deleted += _commit(table, pending_rows, pending_ids, schema)
                pending_rows, pending_ids = [], {}
            if progress is not None:
                progress("embed", done, len(rows))
    if pending_rows:
        report.rows_deleted += _commit(table, pending_rows, pending_ids, schema)
    report.episodes_embedded = done
    report.episodes_skipped = lake.count(where) - done
    _maybe_index(table)
    register_model(lake, model, activate=activate)
    report.seconds = round(time.perf_counter() - started, 3)
    report.images_per_s = round(report.images / timer[0], 1) if timer[0] else 0.0
    if progress is not None:
        progress("embed", len(rows), len(rows))
    return report


def encode_texts_cached(model: ClipModel, texts: list[str], cache: dict[str, np.ndarray], *,
                        max_size: int = 100_000) -> np.ndarray:
    """Text vectors, encoding each distinct text once: robot datasets repeat instructions and segment texts
    across thousands of episodes, so most texts of a run are already in `cache` (kept below `max_size`)."""
    new = list(dict.fromkeys(t for t in texts if t not in cache))
    if new and len(cache) + len(new) > max_size:
        cache.clear()  # then every text of this call is new, also those that were cached a moment ago
        new = list(dict.fromkeys(texts))
    if new:
        cache.update(zip(new, model.encode_texts(new), strict=True))
    if not texts:
        return np.zeros((0, model.dim), dtype=np.float32)
    return np.stack([cache[t] for t in texts])


def vector_rows(rows: list[dict[str, Any]], meta: list[tuple[str, int, str]], img_vecs: Any,
                texts: list[tuple[dict[str, Any], str, str, str]], txt_vecs: Any,
                errors: list[str]) -> list[dict[str, Any]]:
    """The vector-table rows of a chunk of episodes: one per keyframe, one per text, then each episode's mean.

    Args:
        rows: the episodes (with `key` and `dataset`); meta: (episode_id, step, camera) of each image vector.
        texts: (episode row, kind, item, text) of each text vector.
        errors: receives a line for an episode with neither a decodable keyframe nor a text.

    Used by `embed_lake` and by the Ray engine (`curate.distributed`), so both write the same rows.
    """
    out: list[dict[str, Any]] = []
    by_ep: dict[str, list[Any]] = {}
    info = {r["episode_id"]: r for r in rows}
    for (eid, idx, cam), vec in zip(meta, img_vecs, strict=True):
        r = info[eid]
        by_ep.setdefault(eid, []).append(vec)
        out.append({"episode_id": eid, "key": r["key"], "dataset": r["dataset"], "kind": "image",
                    "item": f"{cam}@{idx}", "camera": cam, "step": idx, "text": None, "vector": vec})
    own_texts: dict[str, list[Any]] = {}
    for (r, kind, item, text), vec in zip(texts, txt_vecs, strict=True):
        own_texts.setdefault(r["episode_id"], []).append(vec)
        out.append({"episode_id": r["episode_id"], "key": r["key"], "dataset": r["dataset"], "kind": kind,
                    "item": item, "camera": None, "step": None, "text": text, "vector": vec})
    for r in rows:
        # no decodable frame: fall back to the texts so the episode still has a place
        vecs = by_ep.get(r["episode_id"]) or own_texts.get(r["episode_id"])
        if not vecs:
            errors.append(f"{r['episode_id']}: no keyframe and no text to embed")
            continue
        mean = np.mean(vecs, axis=0)
        mean = mean / (np.linalg.norm(mean) or 1.0)
        out.append({"episode_id": r["episode_id"], "key": r["key"], "dataset": r["dataset"], "kind": "episode",
                    "item": "episode", "camera": None, "step": None, "text": None,
                    "vector": mean.astype(np.float32)})
    return out


def _commit(table: Any, rows: list[dict[str, Any]], keys: dict[str, str], schema: pa.Schema) -> int:
    """Append new rows, then delete the episodes' older rows (readers never see an episode without vectors).

    `keys` holds only episodes that had older rows (the plan's `replaces`): each delete scans the vector table, and
    deleting for every first embedding made a 1M-episode run quadratic (its driver at 88% of a core, the model
    actors starved at 45%).
    """
    vecs = np.stack([r["vector"] for r in rows]).astype(np.float32)
    cols = {n: [r[n] for r in rows] for n in schema.names if n != "vector"}
    arrays = [pa.array(cols[n], type=schema.field(n).type) for n in schema.names if n != "vector"]
    flat = pa.array(vecs.reshape(-1), type=pa.float32())
    arrays.append(pa.FixedSizeListArray.from_arrays(flat, vecs.shape[1]))
    table.add(pa.Table.from_arrays(arrays, schema=schema))
    if not keys:  # first embeddings: nothing to drop. Each delete scans the table, so never issue one needlessly
        return 0
    before = table.count_rows()
    for i in range(0, len(keys), 500):
        part = list(keys.items())[i:i + 500]
        ids = ", ".join(f"'{check_id(e)}'" for e, _ in part)
        ks = ", ".join(f"'{k}'" for _, k in part)
        table.delete(f"episode_id IN ({ids}) AND key NOT IN ({ks})")
    return before - table.count_rows()


def _delete(table: Any, ids: list[str]) -> int:
    before = table.count_rows()
    for i in range(0, len(ids), 500):
        table.delete(f"episode_id IN ({', '.join(repr(check_id(e)) for e in ids[i:i + 500])})")
    return before - table.count_rows()


def index_partitions(rows: int) -> int:
    """IVF partitions for a table of `rows` vectors: sqrt(rows), between 16 and 4,096.

    A probe of `curate.search.NPROBES` partitions then scans ~NPROBES * sqrt(rows) int8 codes: 32K at 1M rows,
    100K at 10M. Lance's k-means trains on a sample (256 vectors per partition), so 4,096 partitions train in
    about the time 1,000 do (measured at 1M: 126 vs 118 CPU-s for the whole IVF-SQ build).
    """
    return max(16, min(4096, round(float(np.sqrt(rows)))))


def _maybe_index(table: Any, *, min_rows: int = INDEX_MIN_ROWS) -> bool:
    """Build an IVF-SQ index (cosine) and the scalar indexes search filters on once the table is large:
    BTree on episode_id (slices, `--like`), Bitmap on kind and dataset (every query; dataset filters).

    SQ (one int8 per dimension) rather than PQ: PQ's 64-byte codes rank neighbours too coarsely to skip the
    refine step (recall@10 0.28 without it on bench_search's 1M set), and the refine reads full vectors at random
    from disk, which once the vectors outgrow the page cache costs more than the whole latency budget. SQ's
    codes (512 bytes for 512 dims) give recall@10 0.95 with no refine, from the index cache alone."""
    n = table.count_rows()
    if n < min_rows:
        return False
    from lancedb.index import Bitmap, BTree, IvfSq

    described = table.to_lance().describe_indices()
    indexed = {c: ix.index_type for ix in described for c in ix.field_names}
    scalar = {"episode_id": BTree, "kind": Bitmap, "dataset": Bitmap}
    if indexed.get("vector") == "IVF_SQ":  # fold new rows into the existing indexes instead of retraining them
        table.optimize()
    else:
        table.create_index("vector", config=IvfSq(distance_type="cosine", num_partitions=index_partitions(n)),
                           replace=True)
        indexed = {}
    for column, config in scalar.items():
        if column not in indexed:  # also adds an index a lake embedded by an older curate lacks
            table.create_index(column, config=config(), replace=True)
    return True


def load_vectors(lake: Lake, *, model_id: str | None = None, where: str | None = None,
                 kind: str = "episode") -> tuple[pl.DataFrame, np.ndarray]:
    """(rows without the vector, the (N, d) float32 matrix) of one kind of vector, restricted to a lake slice.

    Raises:
        EmbeddingsMissingError: no vectors for the model, or none for any episode of the slice.
    """
    model_id = model_id or active_model(lake)["model_id"]
    table = open_vectors(lake, model_id)
    ids = lake.scan(where=where, columns=["episode_id"]).collect()["episode_id"]
    if len(ids) == 0:
        raise EmbeddingsMissingError(f"the slice {where!r} of lake {lake.uri} is empty: no episode matches")
    arrow = table.to_lance().to_table(filter=f"kind = '{kind}'")
    frame = pl.from_arrow(arrow.drop(["vector"]))
    assert isinstance(frame, pl.DataFrame)
    keep = frame["episode_id"].is_in(ids.implode()).to_numpy()
    vec = arrow.column("vector").combine_chunks()
    dim = vec.type.list_size
    matrix = vec.values.to_numpy(zero_copy_only=False).reshape(-1, dim)
    if not keep.all():
        frame = frame.filter(pl.Series(keep))
        matrix = matrix[keep]
    if frame.height == 0:
        raise EmbeddingsMissingError(f"no episode of {where or 'the lake'} has {kind} vectors of {model_id}; run "
                                     f"`curate embed --lake {lake.uri}`")
    return frame, np.ascontiguousarray(matrix, dtype=np.float32)


def report_dict(report: EmbedReport) -> dict[str, Any]:
    return asdict(report)


def demo_pipeline(lake_uri: str, *, progress: Progress | None = None, epochs: int = 10,
                  device: str = "auto") -> dict[str, Any]:
    """What `curate demo` runs after building the lake: pick a CLIP, embed, and derive clusters, tags, novelty.

    Uses the default pretrained CLIP when its weights are already on this machine; otherwise trains the small
    curate-small CLIP on the lake's own (keyframe, instruction) pairs (a few minutes on 2 CPU cores at 400
    episodes). Returns a summary naming the model in use (the UI shows it).
    """
    from curate.analytics import derive
    from curate.analytics.derived import write_derived
    from curate.analytics.shift import shift_audit
    from curate.models import DEFAULT_ARCH, DEFAULT_PRETRAINED, pretrained_available
    from curate.train_clip import train_on_lake

    lake = Lake(lake_uri)
    summary: dict[str, Any] = {}
    target = 'split == "deploy"' if lake.count('split == "deploy"') else 'dataset == "deploy_kitchen"'
    reference = f"not ({target})"
    if pretrained_available(DEFAULT_ARCH, DEFAULT_PRETRAINED):
        model = load_model(DEFAULT_ARCH, DEFAULT_PRETRAINED, device=device)
        summary["model_source"] = f"pretrained {DEFAULT_ARCH}/{DEFAULT_PRETRAINED}"
    else:
        trained = train_on_lake(lake, epochs=epochs, device=device, where=reference, progress=progress)
        model = load_model(pretrained=trained.checkpoint, device=device)
        summary["model_source"] = (f"curate-small trained on this lake ({trained.pairs} pairs, {trained.epochs} "
                                   "epochs): no pretrained CLIP weights were found locally")
        summary["train"] = asdict(trained)
    report = embed_lake(lake, model=model, progress=progress)
    summary["embed"] = asdict(report)
    summary["derive"] = derive(lake, model_id=model.model_id)
    if lake.count(target) and lake.count(reference) >= 2:
        audit = shift_audit(lake, reference=reference, target=target, model_id=model.model_id)
        write_derived(lake, audit.target.select("episode_id", "novelty"))
        summary["shift"] = audit.summary
    summary["model"] = model.describe()
    return summary
