"""Ingest on Ray Data: the same connectors, one read task per work unit, Lance fragments committed once by the driver.

    from curate.distributed import ingest_ray
    report = ingest_ray("/data/bridge", lake="s3://team/lake")                   # starts a local Ray
    report = ingest_ray("/data/bridge", lake="s3://team/lake", address="auto")   # joins the cluster
    curate ingest /data/bridge --lake s3://team/lake --engine ray [--address auto]

How it runs:

1. The driver plans the work units exactly as the local engine does (`curate.ingest.plan_units`: shards, files,
   bags) and makes a Ray Dataset with one block per unit, so each unit is one read task on some worker.
2. Each task runs the local engine's per-unit function (`curate.ingest.convert_unit`: connector, checks, quality
   flags), skips the episodes the lake already holds unchanged (same id, same source fingerprint), and for every
   chunk of episodes (bounded by
   count and bytes, so a worker's memory does not grow with the corpus) writes the steps and frames as Lance data
   files (`lance.fragment.write_fragments`) without committing them. It returns only small metadata: the fragment
   descriptions and the episode rows.
3. The driver commits: steps and frames fragments in one `Append` each, then the episode rows in one
   `merge_insert` (`Lake.commit_staged`). Episodes become visible only at that last commit, exactly as with the
   local engine, so a crash anywhere leaves the lake as it was. Large runs commit in waves of `commit_every`
   episodes so the driver's memory stays bounded too; each wave is atomic.

Retries and resume: a task whose worker or node dies is re-run by Ray core; an error raised inside the task is
retried `max_retries` times (a connector's own error about a record is not an error of the task: it is a rejected
episode, as locally). A task returns its records only after the whole unit is converted, so the fragments of a
failed attempt are never reported and never committed: no episode is duplicated (and episode ids are
deterministic, so a replay replaces rather than adds). An interrupted run keeps its committed waves; the next run
skips every episode already stored unchanged, like a local re-ingest. Uncommitted data files of failed attempts
are unreferenced by any table version; they cost disk only.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from connectors.base import BadEpisode
from curate.errors import ConfigError, IngestError
from curate.ingest import IngestProgress, IngestReport, Rejection, WorkUnit, convert_unit, plan_units
from curate.lake import BATCH_BYTES, FRAMES, STEPS, TABLE_SCHEMAS, Lake, episode_tables
from schemas import Episode
from schemas.columns import frame_bytes

COUNT_FIELDS = ("episodes", "steps", "unchanged", "replaced", "rejected")
ENV_PASSTHROUGH = ("AWS_", "GOOGLE_", "CURATE_", "HF_HUB_OFFLINE", "RAY_USAGE_STATS_ENABLED")
"""Environment variables handed to Ray workers (object-store credentials and endpoints, curate settings)."""
EPISODES_PER_FRAGMENT = 256
FRAGMENT_BYTES = min(BATCH_BYTES, 128 * 1024 * 1024)
"""A task writes a fragment when its chunk reaches this many episodes or frame bytes: its memory bound."""
COMMIT_EVERY = 50_000
"""Episodes per driver commit (one wave). A run smaller than this commits exactly once."""


# --------------------------------------------------------------------------------------------- the Ray session
def ray_env() -> dict[str, str]:
    """The environment variables workers need (credentials, endpoints, offline switches)."""
    return {k: v for k, v in os.environ.items() if k.startswith(ENV_PASSTHROUGH)}


@contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[Any]:
    """Join the cluster at `address` (e.g. "auto" or "ray://head:10001"), or start a local Ray when None.

    A local Ray starts without dashboard and with usage statistics off; it is shut down on exit. A Ray that was
    already initialised in this process is used as it is and left running.

    Raises:
        ConfigError: Ray is not installed.
    """
    try:
        import ray
    except ImportError:
        raise ConfigError("the Ray engine needs Ray Data: pip install 'curate-robot-data[ray]'") from None
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        yield ray
        return
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "runtime_env": {"env_vars": ray_env()}}
    if address is None:
        kwargs["num_cpus"] = num_cpus
    else:
        kwargs["address"] = address
    ray.init(**kwargs)
    try:
        _quiet_data_context()
        yield ray
    finally:
        ray.shutdown()


def _local_path(uri: str) -> str | None:
    """The filesystem path of a local URI (a plain path or file://), None for an object-store URI."""
    if uri.startswith("file://"):
        return uri.removeprefix("file://")
    return None if "://" in uri else uri


def paths_missing_on_nodes(ray: Any, uris: Iterable[str]) -> dict[str, list[str]]:
    """node address -> the local paths among `uris` that node cannot see (empty on a one-node Ray).

    Every task may run on any node, so on a cluster a local source or lake path must exist on every node (a shared
    filesystem mounted at the same path); object-store URIs are reachable from everywhere and are not checked.
    One tiny zero-CPU task per node, pinned to that node, does the looking.
    """
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    paths = sorted({p for p in (_local_path(u) for u in uris) if p})
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if not paths or len(nodes) < 2:
        return {}
    look = ray.remote(num_cpus=0)(lambda ps: [p for p in ps if not os.path.exists(p)])
    pending = {n["NodeManagerAddress"] + ":" + str(n["NodeManagerPort"]): look.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(paths) for n in nodes}
    return {node: missing for node, missing in zip(pending, ray.get(list(pending.values())), strict=True) if missing}


def require_paths_on_every_node(ray: Any, uris: Iterable[str]) -> None:
    """Raise ConfigError before any task runs when a node of the cluster cannot see a local source or lake path.

    Without this a multi-node run fails task by task (or, for a lake, writes data files to one node's own disk).
    """
    missing = paths_missing_on_nodes(ray, uris)
    if missing:
        where = "; ".join(f"node {node} cannot see {', '.join(paths)}" for node, paths in sorted(missing.items()))
        raise ConfigError(f"the Ray cluster has nodes that do not share these local paths ({where}); put the lake "
                          "and the sources on object storage (s3://, gs://) or on a filesystem mounted at the same "
                          "path on every node")


def _quiet_data_context() -> Any:
    """Ray Data without progress bars (curate shows its own) and with results in unit order (determinism)."""
    import ray.data

    logging.getLogger("ray.data").setLevel(logging.WARNING)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.execution_options.preserve_order = True
    return ctx


# --------------------------------------------------------------------------------------------- worker side
def episode_rows(episodes: Iterable[Episode]) -> tuple[pa.Table, pa.Table, pa.Table]:
    """(episode rows, step rows, frame rows) of some episodes, keyed by a fresh revision: the lake's row layout,
    exactly what `Lake.stage_episodes` writes (`curate.lake.episode_tables`), for Step objects or columns alike."""
    return episode_tables(episodes)


def _chunks(items: Iterable[Episode | BadEpisode], *, max_episodes: int,
            max_bytes: int) -> Iterator[list[Episode | BadEpisode]]:
    """Group a unit's stream into chunks of at most `max_episodes` episodes or `max_bytes` frame bytes."""
    chunk: list[Episode | BadEpisode] = []
    n, size = 0, 0
    for item in items:
        chunk.append(item)
        if isinstance(item, Episode):
            n += 1
            size += frame_bytes(item)
        if n >= max_episodes or size >= max_bytes:
            yield chunk
            chunk, n, size = [], 0, 0
    if chunk:
        yield chunk


def _write_fragments(table: pa.Table, lake: Lake, name: str) -> list[str]:
    """Write rows as Lance data files of table `name` without committing; return the fragments as JSON."""
    from lance.fragment import write_fragments

    if table.num_rows == 0:
        return []
    table = table.cast(TABLE_SCHEMAS[name]).combine_chunks()  # one chunk per column: see Lake._append
    frags = write_fragments(table, lake.table_uri(name), schema=TABLE_SCHEMAS[name],
                            storage_options=lake.storage_options or None,
                            data_storage_version=lake.file_format(name))
    return [json.dumps(f.to_json()) for f in frags]


def _source_name(source: str) -> str:
    return source.rstrip("/").split("/")[-1] or source


def stage_unit(unit: WorkUnit, *, lake_uri: str, storage_options: dict[str, str],
               max_episodes: int = EPISODES_PER_FRAGMENT, max_bytes: int = FRAGMENT_BYTES) -> list[dict[str, Any]]:
    """Convert one work unit (`curate.ingest.convert_unit`) and write its steps and frames as uncommitted fragments.

    Runs in a Ray task. Episodes stored with the same source fingerprint are skipped as unchanged. Returns one
    small record per chunk: the episode rows (Arrow IPC bytes), the fragments of steps and frames (JSON), counts
    per dataset, rejections and warnings. A unit without episodes still gives one record.
    """
    lake = Lake(lake_uri, storage_options=storage_options, read_only=True)
    fallback = unit.options.dataset or _source_name(unit.source)
    records = []
    for chunk in _chunks(convert_unit(unit), max_episodes=max_episodes, max_bytes=max_bytes):
        good = [e for e in chunk if isinstance(e, Episode)]
        counts: dict[str, dict[str, int]] = {}
        rejections, warns = [], []
        dataset = good[0].dataset if good else fallback
        for item in chunk:
            if isinstance(item, Episode):
                dataset = item.dataset
            elif item.record == "warning":
                warns.append(item.reason)
            else:
                counts.setdefault(dataset, dict.fromkeys(COUNT_FIELDS, 0))["rejected"] += 1
                rejections.append({"dataset": dataset, "file": item.file, "record": item.record,
                                   "reason": item.reason})
        stored = lake.refresh().revisions([e.episode_id for e in good]) if good else {}
        fresh = []
        for ep in {e.episode_id: e for e in good}.values():
            c = counts.setdefault(ep.dataset, dict.fromkeys(COUNT_FIELDS, 0))
            if stored.get(ep.episode_id) == ep.source.fingerprint:
                c["unchanged"] += 1
                continue
            fresh.append(ep)
            c["episodes"] += 1
            c["steps"] += ep.n_steps
            c["replaced"] += ep.episode_id in stored
        rows, steps, frames = episode_rows(fresh)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, rows.schema) as writer:
            writer.write_table(rows)
        records.append({"unit": unit.unit, "episodes_ipc": sink.getvalue().to_pybytes(), "n_episodes": rows.num_rows,
                        "counts": json.dumps(counts), "rejections": json.dumps(rejections),
                        "warnings": json.dumps(warns),
                        "steps_fragments": json.dumps(_write_fragments(steps, lake, STEPS)),
                        "frames_fragments": json.dumps(_write_fragments(frames, lake, FRAMES))})
    if not records:
        records.append({"unit": unit.unit, "episodes_ipc": b"", "n_episodes": 0, "counts": "{}", "rejections": "[]",
                        "warnings": "[]", "steps_fragments": "[]", "frames_fragments": "[]"})
    return records


def _stage_batch(batch: dict[str, Any], *, units: Sequence[WorkUnit], **kwargs: Any) -> dict[str, list[Any]]:
    """Ray Data map_batches adapter: unit indices in, one output row per staged chunk out.

    The whole unit is converted before anything is returned, so a failed attempt emits nothing: only a
    successful attempt's fragments ever reach the driver.
    """
    out: dict[str, list[Any]] = {}
    for index in batch["index"]:
        for record in stage_unit(units[int(index)], **kwargs):
            for key, value in record.items():
                out.setdefault(key, []).append(value)
    return out


# --------------------------------------------------------------------------------------------- driver side
@dataclass
class _Wave:
    """Staged work not yet committed."""

    rows: list[pa.Table] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    frames: list[str] = field(default_factory=list)
    episodes: int = 0

    def add(self, record: dict[str, Any]) -> None:
        if record["n_episodes"]:
            self.rows.append(pa.ipc.open_stream(record["episodes_ipc"]).read_all())
        self.steps.extend(json.loads(record["steps_fragments"]))
        self.frames.extend(json.loads(record["frames_fragments"]))
        self.episodes += int(record["n_episodes"])


def commit_fragments(lake: Lake, name: str, fragments: Sequence[str]) -> int:
    """Commit uncommitted fragments (JSON from the workers) to table `name` in one Lance commit. Returns count."""
    import lance
    from lance.fragment import FragmentMetadata

    if not fragments:
        return 0
    frags = [FragmentMetadata.from_json(f) for f in fragments]
    existing = lake.table(name, refresh=True)
    opts = lake.storage_options or None
    if existing is None:
        op = lance.LanceOperation.Overwrite(TABLE_SCHEMAS[name], frags)
        lance.LanceDataset.commit(lake.table_uri(name), op, storage_options=opts)
    else:
        lance.LanceDataset.commit(lake.table_uri(name), lance.LanceOperation.Append(frags),
                                  read_version=existing.version, storage_options=opts)
    lake.refresh()
    return len(frags)


def _commit_wave(lake: Lake, wave: _Wave, report: IngestReport) -> None:
    """Steps, then frames, then the episode rows: episodes become visible at the last commit only."""
    commit_fragments(lake, STEPS, wave.steps)
    commit_fragments(lake, FRAMES, wave.frames)
    if wave.rows:
        report.version = lake.commit_staged(pa.concat_tables(wave.rows)).version


def ingest_ray(
    sources: str | Iterable[str],
    *,
    lake: str | Lake,
    format: str = "auto",
    dataset: str | None = None,
    splits: Iterable[str] = (),
    strict: bool = False,
    on_error: str | None = None,
    progress: Callable[[IngestProgress], None] | None = None,
    extra: dict[str, Any] | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
    commit_every: int = COMMIT_EVERY,
    max_episodes: int = EPISODES_PER_FRAGMENT,
    max_retries: int = 3,
) -> IngestReport:
    """`curate.ingest.ingest` on Ray Data: same units, same per-unit conversion, same report (module docstring).

    Args:
        sources, lake, format, dataset, splits, strict, on_error, progress, extra: as for `curate.ingest.ingest`.
        address: a Ray cluster to join ("auto", "ray://head:10001"); None starts a local Ray.
        num_cpus: CPUs of a local Ray (default: all of the machine).
        commit_every: episodes per atomic commit wave (a strict run commits once, at the end).
        max_episodes: episodes per written fragment (a task's memory bound, with FRAGMENT_BYTES).
        max_retries: times a failed unit task is re-run (a dead worker or node, or an error in the task).

    Returns:
        The `IngestReport`.

    Raises:
        IngestError: `strict` and a bad episode (nothing committed; report at `exc.report`), or a unit task
            failed after its retries (what was committed before stays; run again to resume).
    """
    policy = on_error or ("stop" if strict else "skip")
    if policy not in ("skip", "stop"):
        raise ConfigError(f"on_error must be 'skip' or 'stop', got {policy!r}")
    if commit_every < 1:
        raise ConfigError("commit_every must be at least 1")
    started = time.perf_counter()
    source_list = [str(sources)] if isinstance(sources, (str, os.PathLike)) else [str(s) for s in sources]
    units, formats = plan_units(source_list, format=format, dataset=dataset, splits=splits, extra=extra)
    the_lake = lake if isinstance(lake, Lake) else Lake.create(str(lake))
    the_lake.require_writable()
    report = IngestReport(lake=the_lake.uri, sources=source_list, formats=formats, units=len(units))
    wave_limit = commit_every if policy == "skip" else None
    units_done = 0

    def emit() -> None:
        if progress is not None:
            progress(IngestProgress(report.episodes, report.steps, report.unchanged, report.rejected, units_done,
                                    len(units), time.perf_counter() - started))

    with ray_session(address, num_cpus=num_cpus) as ray:
        import ray.data

        require_paths_on_every_node(ray, [the_lake.uri, *sorted({u.source for u in units})])
        ctx = _quiet_data_context()
        ctx.retried_map_errors = max_retries > 0  # an error inside the task; a dead worker is retried by Ray core
        ctx.max_map_retries = max_retries
        items = ray.data.from_items([{"index": i} for i in range(len(units))], override_num_blocks=len(units))
        with warnings.catch_warnings():  # Ray 2.60 deprecates ray_remote_args; Ray's default retries forever
            warnings.simplefilter("ignore")
            staged = items.map_batches(
                _stage_batch, batch_size=1, num_cpus=1, max_retries=max_retries,
                fn_kwargs={"units": units, "lake_uri": the_lake.uri, "storage_options": the_lake.storage_options,
                           "max_episodes": max_episodes})
        wave = _Wave()
        seen_units: set[str] = set()
        try:
            for record in staged.iter_rows():
                wave.add(record)
                for name, c in json.loads(record["counts"]).items():
                    counts = report.counts(name)
                    for key in COUNT_FIELDS:
                        setattr(counts, key, getattr(counts, key) + c[key])
                report.rejections.extend(Rejection(**r) for r in json.loads(record["rejections"]))
                report.warnings.extend(w for w in json.loads(record["warnings"]) if w not in report.warnings)
                if policy == "stop" and report.rejections:
                    first = report.rejections[0]
                    report.stopped = f"{first.file} record {first.record}: {first.reason}"
                    break
                if wave_limit is not None and wave.episodes >= wave_limit:
                    _commit_wave(the_lake, wave, report)
                    wave = _Wave()
                if record["unit"] not in seen_units:
                    seen_units.add(record["unit"])
                    units_done = len(seen_units)
                emit()
        except Exception as exc:  # a unit task failed after its retries: committed waves stay, nothing else
            raise IngestError(f"distributed ingest failed: {exc}; the {report.episodes - wave.episodes} episodes "
                              "committed before stay; run the same command again to resume") from exc
        if report.stopped:
            report.committed = False
            report.version = the_lake.refresh().version
            report.seconds = time.perf_counter() - started
            error = IngestError(f"--strict: stopped at the first bad episode ({report.stopped}); "
                                "nothing of this run was committed")
            error.report = report  # type: ignore[attr-defined]
            raise error
        _commit_wave(the_lake, wave, report)
    if report.version is None:
        report.version = the_lake.refresh().version
    if report.episodes:
        the_lake.index_revisions()
    report.seconds = time.perf_counter() - started
    emit()
    return report


# --------------------------------------------------------------------------------------------- embedding
class _Preprocessor:
    """What the decode tasks need of a model: its image preprocessing only (no weights shipped to them)."""

    def __init__(self, preprocess: Any) -> None:
        self.preprocess = preprocess


def _decode_chunk(batch: dict[str, Any], *, lake_uri: str, storage_options: dict[str, str], preprocess: Any,
                  policy: str) -> dict[str, list[Any]]:
    """CPU stage: read and decode the keyframes of a chunk of episodes (`curate.embed._load_batch`)."""
    from curate.embed import _load_batch

    lake = Lake(lake_uri, storage_options=storage_options, read_only=True)
    out: dict[str, list[Any]] = {"rows": [], "images": [], "shape": [], "meta": [], "errors": []}
    for rows_json in batch["rows"]:
        rows = json.loads(rows_json)
        loaded = _load_batch(lake, rows, _Preprocessor(preprocess), policy)  # type: ignore[arg-type]
        images = loaded["images"]
        array = images.numpy().astype("float32") if images is not None else None
        out["rows"].append(rows_json)
        out["images"].append(array.tobytes() if array is not None else b"")
        out["shape"].append(json.dumps(list(array.shape) if array is not None else []))
        out["meta"].append(json.dumps(loaded["meta"]))
        out["errors"].append(json.dumps(loaded["errors"]))
    return out


EMBED_CHUNK_BYTES = 64 << 20
"""Preprocessed pixels (float32) per Ray decode task, with at most `EMBED_CHUNK_MAX_EPISODES` episodes: a few
thousand small images or ~100 ViT-B-32 inputs a task, so Ray's per-task cost (~0.02-0.03 s, docs/performance.md)
stays a small share of each task's work. Tasks of `--batch` images (10 episodes) ran at 20-55 images/s."""
EMBED_CHUNK_MAX_EPISODES = 512


def embed_chunk_episodes(model: Any, images_per_episode: int, batch: int) -> int:
    """Episodes per decode task: as many as fit `EMBED_CHUNK_BYTES` of the model's input, at least one batch."""
    from PIL import Image

    pixels = math.prod(model.preprocess(Image.new("RGB", (8, 8))).shape) * 4
    per_episode = max(1, images_per_episode) * pixels
    return max(1, batch // max(1, images_per_episode), min(EMBED_CHUNK_MAX_EPISODES, EMBED_CHUNK_BYTES // per_episode))


class _Encoder:
    """Model stage: a Ray actor holding one CLIP (on a GPU when it has one) that turns decoded chunks into vectors,
    `batch` images per forward pass, each distinct text encoded once per actor (as `embed_lake` does)."""

    def __init__(self, arch: str, pretrained: str | None, device: str, allow_random: bool, batch: int = 64) -> None:
        from curate.models import load_model

        self.model = load_model(arch, pretrained, device=device, allow_random=allow_random)
        self.batch = batch
        self.text_cache: dict[str, Any] = {}

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        import numpy as np
        import torch

        from curate.embed import _episode_texts, encode_texts_cached, vector_rows

        out: dict[str, list[Any]] = {"vectors": [], "ids": [], "episodes": [], "images": [], "texts": [],
                                     "errors": []}
        for rows_json, blob, shape_json, meta_json, errors_json in zip(
                batch["rows"], batch["images"], batch["shape"], batch["meta"], batch["errors"], strict=True):
            rows = json.loads(rows_json)
            shape = json.loads(shape_json)
            meta = [tuple(m) for m in json.loads(meta_json)]
            errors = json.loads(errors_json)
            if shape:
                images = torch.from_numpy(np.frombuffer(blob, dtype=np.float32).reshape(shape).copy())
                img_vecs = np.concatenate([self.model.encode_images(images[i:i + self.batch])
                                           for i in range(0, len(images), self.batch)])
            else:
                img_vecs = np.zeros((0, self.model.dim), dtype=np.float32)
            texts = [(r, kind, item, text) for r in rows for kind, item, text in _episode_texts(r)]
            txt_vecs = encode_texts_cached(self.model, [t for *_, t in texts], self.text_cache)
            vrows = vector_rows(rows, meta, img_vecs, texts, txt_vecs, errors)
            out["vectors"].append(_vectors_ipc(vrows, self.model.dim))
            out["ids"].append(json.dumps({r["episode_id"]: r["key"] for r in vrows if r["kind"] == "episode"}))
            out["episodes"].append(len(rows))
            out["images"].append(len(meta))
            out["texts"].append(len(texts))
            out["errors"].append(json.dumps(errors))
        return out


def _vectors_ipc(rows: list[dict[str, Any]], dim: int) -> bytes:
    """Vector rows as Arrow IPC bytes in the vectors table's schema."""
    import numpy as np

    from curate.embed import vectors_schema

    schema = vectors_schema(dim)
    vecs = np.stack([r["vector"] for r in rows]).astype(np.float32) if rows else np.zeros((0, dim), np.float32)
    arrays = [pa.array([r[n] for r in rows], type=schema.field(n).type) for n in schema.names if n != "vector"]
    arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1), type=pa.float32()), dim))
    sink = pa.BufferOutputStream()
    table = pa.Table.from_arrays(arrays, schema=schema)
    with pa.ipc.new_stream(sink, schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def embed_ray(lake: Lake | str, *, model: Any = None, arch: str | None = None, pretrained: str | None = None,
              device: str = "auto", batch: int = 64, where: str | None = None, keyframes: str = "first,middle,last",
              activate: bool = True, allow_random: bool = False, address: str | None = None,
              num_cpus: int | None = None, model_actors: int | None = None,
              progress: Callable[[str, int, int], None] | None = None) -> Any:
    """`curate.embed.embed_lake` on Ray Data: CPU decode tasks feeding CLIP model actors (GPU when available).

    Same plan (only new or changed episodes), same keyframes, same model, same rows as the local engine; the
    driver appends the vectors and removes the episodes' older rows as `embed_lake` does.

    Args:
        model: an already loaded `ClipModel` (its arch and weights are loaded again by each model actor); else
            one is loaded from `arch` + `pretrained`.
        model_actors: how many model replicas. Default: one per GPU of the cluster; on a cluster without GPUs,
            one per CPU. Each actor on a GPU takes the decoded chunks of the CPU decode tasks. Without GPUs the
            two stages ask for the same resources (1 CPU), so Ray Data fuses them: every actor reads, decodes
            and encodes its own chunks, and the actor count is what spreads decoding over the CPUs (with one
            actor, one CPU did all of it: 1,472 images/s at 100k on 2 CPUs, docs/performance.md).
        address, num_cpus: as for `ingest_ray`.
        Others: as for `curate.embed.embed_lake`.

    Returns:
        A `curate.embed.EmbedReport`.
    """
    import numpy as np

    from curate import embed as local
    from curate.models import load_model

    the_lake = lake if isinstance(lake, Lake) else Lake(str(lake))
    the_lake.require_writable()
    if batch < 1:
        raise ConfigError("--batch must be at least 1")
    local.keyframe_indices(3, keyframes)
    started = time.perf_counter()
    model = model or load_model(arch, pretrained, device="cpu", allow_random=allow_random)
    if model.pretrained is None:
        raise ConfigError("the Ray engine needs weights every model actor can load (a pretrained tag or a checkpoint "
                          "file); save random weights with curate.models.make_random_checkpoint first")
    report = local.EmbedReport(model_id=model.model_id)
    todo, stale = local.plan(the_lake, model_id=model.model_id, where=where, keyframes=keyframes)
    report.episodes_seen = todo.height
    import lancedb

    db = lancedb.connect(the_lake.uri, storage_options=the_lake.storage_options or None)
    name = local.table_name(model.model_id)
    schema = local.vectors_schema(model.dim)
    table = db.create_table(name, schema=schema, exist_ok=True)
    if table.schema.field("vector").type != schema.field("vector").type:
        raise local.ModelMismatchError(f"{name} holds vectors of another dimension than {model.model_id}")
    if stale:
        report.rows_deleted += local._delete(table, stale)
    rows = todo.to_dicts()
    per_ep = max(1, len(local.keyframe_indices(max(1, int(np.median([r["n_steps"] or 1 for r in rows] or [1]))),
                                               keyframes)) * 2)
    chunk_size = embed_chunk_episodes(model, per_ep, batch)
    chunks = [json.dumps(rows[i:i + chunk_size], default=str) for i in range(0, len(rows), chunk_size)]
    done = 0
    if chunks:
        with ray_session(address, num_cpus=num_cpus) as ray:
            import ray.data

            _quiet_data_context()
            checkpoint = [model.pretrained] if os.path.isfile(model.pretrained) else []  # not a pretrained tag
            require_paths_on_every_node(ray, [the_lake.uri, *checkpoint])
            resources = ray.cluster_resources()
            gpus = int(resources.get("GPU", 0))
            actors = model_actors or min(len(chunks), gpus or max(1, int(resources.get("CPU", 1))))
            items = ray.data.from_items([{"rows": c} for c in chunks], override_num_blocks=len(chunks))
            decoded = items.map_batches(
                _decode_chunk, batch_size=1, num_cpus=1,
                fn_kwargs={"lake_uri": the_lake.uri, "storage_options": the_lake.storage_options,
                           "preprocess": model.preprocess, "policy": keyframes})
            encoded = decoded.map_batches(
                _Encoder, batch_size=1, concurrency=actors, num_gpus=1 if gpus else 0, num_cpus=0 if gpus else 1,
                fn_constructor_kwargs={"arch": model.arch, "pretrained": model.pretrained,
                                       "device": device if gpus or device != "auto" else "cpu",
                                       "allow_random": allow_random, "batch": batch})
            pending: list[dict[str, Any]] = []
            pending_ids: dict[str, str] = {}  # episodes whose older rows go once their new rows are in
            replacing = {r["episode_id"] for r in rows if r["replaces"]}
            for record in encoded.iter_rows():
                vectors = pa.ipc.open_stream(record["vectors"]).read_all()
                for r in vectors.to_pylist():
                    r["vector"] = np.asarray(r["vector"], dtype=np.float32)
                    pending.append(r)
                pending_ids.update({e: k for e, k in json.loads(record["ids"]).items() if e in replacing})
                report.images += int(record["images"])
                report.texts += int(record["texts"])
                report.errors.extend(json.loads(record["errors"]))
                done += int(record["episodes"])
                if len(pending) >= 4096:
                    report.rows_deleted += local._commit(table, pending, pending_ids, schema)
                    pending, pending_ids = [], {}
                if progress is not None:
                    progress("embed", done, len(rows))
            if pending:
                report.rows_deleted += local._commit(table, pending, pending_ids, schema)
    report.episodes_embedded = done
    report.episodes_skipped = the_lake.count(where) - done
    local._maybe_index(table)
    local.register_model(the_lake, model, activate=activate)
    report.seconds = round(time.perf_counter() - started, 3)
    report.images_per_s = round(report.images / report.seconds, 1) if report.seconds else 0.0
    if progress is not None:
        progress("embed", len(rows), len(rows))
    return report
