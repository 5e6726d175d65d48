"""Ingest on Ray Data: the same connectors, one read task per work unit, Lance fragments committed once by the driver.

    from curate.distributed import ingest_ray
    report = ingest_ray("/data/bridge", "s3://team/lake", format="rlds")              # starts a local Ray
    report = ingest_ray("/data/bridge", "s3://team/lake", format="rlds", address="auto")  # joins a cluster

How it runs:

1. The driver asks the connector for its work units (`list_units`: shards, files, bags) and makes a Ray Dataset
   with one block per unit, so each unit is one read task on some worker.
2. Each task streams the unit's episodes through the connector (`episodes(unit, options)`), skips the ones the
   lake already holds unchanged (same id, same source fingerprint), and for every chunk of episodes (bounded by
   count and bytes, so a worker's memory does not grow with the corpus) writes the steps and frames as Lance data
   files (`lance.fragment.write_fragments`) without committing them. It returns only small metadata: the fragment
   descriptions and the episode rows.
3. The driver commits: steps and frames fragments in one `Append` each, then the episode rows in one
   `merge_insert` (`Lake.commit_staged`). Episodes become visible only at that last commit, exactly as with the
   local engine, so a crash anywhere leaves the lake as it was. Large runs commit in waves of `commit_every`
   episodes so the driver's memory stays bounded too; each wave is atomic.

Retries and resume: a failed task is re-run by Ray (`max_retries`, application errors included). The fragments
the failed attempt wrote were never reported, so they are never committed: no episode is duplicated (and episode
ids are deterministic, so a replay replaces rather than adds). An interrupted run keeps its committed waves; the
next run skips every episode already stored unchanged, like a local re-ingest.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import pyarrow as pa

from connectors.base import BadEpisode, Connector, SourceOptions
from curate.errors import ConfigError, IngestError
from curate.lake import BATCH_BYTES, FRAMES, LAKE_EPISODES_SCHEMA, STEPS, TABLE_SCHEMAS, Lake, check_id
from schemas import FRAMES_SCHEMA, STEPS_SCHEMA, Episode
from schemas.arrow import model_to_row
from schemas.episode import EPISODE_ROW_EXCLUDE

Progress = Callable[[str, int, int], None]
"""progress(stage, done, total): stage is "units" (tasks finished of all) or "commit"."""
OnBad = Literal["report", "fail"]
ENV_PASSTHROUGH = ("AWS_", "GOOGLE_", "CURATE_", "HF_HUB_OFFLINE", "RAY_USAGE_STATS_ENABLED")
"""Environment variables handed to Ray workers (object-store credentials and endpoints, curate settings)."""
EPISODES_PER_FRAGMENT = 256
FRAGMENT_BYTES = min(BATCH_BYTES, 128 * 1024 * 1024)
"""A task writes a fragment when its chunk reaches this many episodes or frame bytes: its memory bound."""
COMMIT_EVERY = 50_000
"""Episodes per driver commit (one wave). A run smaller than this commits exactly once."""


@dataclass
class RayIngestReport:
    """What a distributed ingest did."""

    units: int = 0
    episodes_written: int = 0
    episodes_unchanged: int = 0
    steps_written: int = 0
    replaced: int = 0
    commits: int = 0
    fragments: int = 0
    version: int | None = None
    bad: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    episodes_per_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    """(episode rows, step rows, frame rows) of some episodes, keyed by a fresh revision: the lake's row layout.

    Mirrors what `Lake.stage_episodes` writes; within the given episodes the last occurrence of an id wins.
    """
    by_id = {ep.episode_id: ep for ep in episodes}
    rows, step_rows, frame_rows = [], [], []
    no_frames = frozenset({"frames"})
    for ep in by_id.values():
        check_id(ep.episode_id)
        revision = f"{ep.revision[:16]}-{uuid.uuid4().hex[:12]}"
        row = model_to_row(ep, exclude=EPISODE_ROW_EXCLUDE)
        row["revision"] = revision
        rows.append(row)
        key = {"episode_id": ep.episode_id, "revision": revision}
        for step in ep.steps:
            step_rows.append({**key, **model_to_row(step, exclude=no_frames)})
            for frame in step.frames:
                frame_rows.append({**key, "index": step.index, **model_to_row(frame)})
    return (pa.Table.from_pylist(rows, schema=LAKE_EPISODES_SCHEMA),
            pa.Table.from_pylist(step_rows, schema=STEPS_SCHEMA),
            pa.Table.from_pylist(frame_rows, schema=FRAMES_SCHEMA))


def _chunks(items: Iterable[Episode | BadEpisode], *, max_episodes: int,
            max_bytes: int) -> Iterator[list[Episode | BadEpisode]]:
    """Group a unit's stream into chunks of at most `max_episodes` episodes or `max_bytes` frame bytes."""
    chunk: list[Episode | BadEpisode] = []
    n, size = 0, 0
    for item in items:
        chunk.append(item)
        if isinstance(item, Episode):
            n += 1
            size += sum(len(f.data or b"") for s in item.steps for f in s.frames)
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
    frags = write_fragments(table.cast(TABLE_SCHEMAS[name]), lake.table_uri(name), schema=TABLE_SCHEMAS[name],
                            storage_options=lake.storage_options or None)
    return [json.dumps(f.to_json()) for f in frags]


def stage_unit(unit: str, *, connector: Connector, options: SourceOptions, lake_uri: str,
               storage_options: dict[str, str], skip: str = "unchanged", max_episodes: int = EPISODES_PER_FRAGMENT,
               max_bytes: int = FRAGMENT_BYTES) -> Iterator[dict[str, Any]]:
    """Convert one work unit and write its steps and frames as uncommitted fragments (runs in a Ray task).

    Yields one small record per chunk: the unit, the episode rows (Arrow IPC bytes), the fragment JSON of steps and
    frames, counts and the unit's bad episodes. A unit without episodes still yields one record.
    """
    lake = Lake(lake_uri, storage_options=storage_options, read_only=True)
    emitted = False
    for chunk in _chunks(connector.episodes(unit, options), max_episodes=max_episodes, max_bytes=max_bytes):
        good = [e for e in chunk if isinstance(e, Episode)]
        bad = [asdict(b) for b in chunk if isinstance(b, BadEpisode)]
        unchanged = 0
        if skip == "unchanged" and good:
            stored = lake.refresh().revisions([e.episode_id for e in good])
            fresh = [e for e in good if stored.get(e.episode_id) != e.source.fingerprint]
            unchanged, good = len(good) - len(fresh), fresh
        rows, steps, frames = episode_rows(good)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, rows.schema) as writer:
            writer.write_table(rows)
        emitted = True
        yield {"unit": unit, "episodes_ipc": sink.getvalue().to_pybytes(), "n_episodes": rows.num_rows,
               "n_steps": steps.num_rows, "n_unchanged": unchanged, "bad": json.dumps(bad),
               "steps_fragments": json.dumps(_write_fragments(steps, lake, STEPS)),
               "frames_fragments": json.dumps(_write_fragments(frames, lake, FRAMES))}
    if not emitted:
        yield {"unit": unit, "episodes_ipc": b"", "n_episodes": 0, "n_steps": 0, "n_unchanged": 0, "bad": "[]",
               "steps_fragments": "[]", "frames_fragments": "[]"}


def _stage_batch(batch: dict[str, Any], **kwargs: Any) -> dict[str, list[Any]]:
    """Ray Data map_batches adapter: a batch of units in, one output row per staged chunk out."""
    out: dict[str, list[Any]] = {}
    for unit in batch["unit"]:
        for record in stage_unit(str(unit), **kwargs):
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
    steps_count: int = 0

    def add(self, record: dict[str, Any]) -> None:
        if record["n_episodes"]:
            self.rows.append(pa.ipc.open_stream(record["episodes_ipc"]).read_all())
        self.steps.extend(json.loads(record["steps_fragments"]))
        self.frames.extend(json.loads(record["frames_fragments"]))
        self.episodes += int(record["n_episodes"])
        self.steps_count += int(record["n_steps"])


def commit_fragments(lake: Lake, name: str, fragments: Sequence[str]) -> int:
    """Commit uncommitted fragments (JSON from the workers) to table `name` in one Lance commit. Returns count."""
    import lance
    from lance.fragment import FragmentMetadata

    if not fragments:
        return 0
    frags = [FragmentMetadata.from_json(f) for f in fragments]
    existing = lake._dataset(name, refresh=True)
    opts = lake.storage_options or None
    if existing is None:
        op = lance.LanceOperation.Overwrite(TABLE_SCHEMAS[name], frags)
        lance.LanceDataset.commit(lake.table_uri(name), op, storage_options=opts)
    else:
        lance.LanceDataset.commit(lake.table_uri(name), lance.LanceOperation.Append(frags),
                                  read_version=existing.version, storage_options=opts)
    lake.refresh()
    return len(frags)


def _commit_wave(lake: Lake, wave: _Wave, report: RayIngestReport) -> None:
    """Steps, then frames, then the episode rows: episodes become visible at the last commit only."""
    report.fragments += commit_fragments(lake, STEPS, wave.steps)
    report.fragments += commit_fragments(lake, FRAMES, wave.frames)
    if wave.rows:
        result = lake.commit_staged(pa.concat_tables(wave.rows))
        report.episodes_written += result.episodes
        report.replaced += result.replaced
        report.version = result.version
        report.commits += 1
    report.steps_written += wave.steps_count


def ingest_ray(source: str, lake: Lake | str, *, format: str | Connector, options: SourceOptions | None = None,
               address: str | None = None, num_cpus: int | None = None, skip: str = "unchanged",
               on_bad: OnBad = "report", commit_every: int = COMMIT_EVERY,
               max_episodes: int = EPISODES_PER_FRAGMENT, max_retries: int = 3,
               progress: Progress | None = None) -> RayIngestReport:
    """Ingest `source` into `lake` on Ray Data (see the module docstring).

    Args:
        format: a registered connector name, or a connector instance.
        address: a Ray cluster to join ("auto", "ray://host:10001"); None starts a local Ray.
        num_cpus: CPUs of a local Ray (default: all).
        skip: "unchanged" skips episodes stored with the same source fingerprint; "none" rewrites everything.
        on_bad: "report" lists damaged episodes and goes on; "fail" stops before any commit if there is one.
        commit_every: episodes per atomic commit wave.
        max_retries: times Ray re-runs a failed unit task.

    Returns:
        A RayIngestReport.

    Raises:
        IngestError: a unit failed after its retries, or (on_bad="fail") a damaged episode was found.
    """
    from connectors import registry

    if skip not in ("unchanged", "none"):
        raise ConfigError(f"skip must be 'unchanged' or 'none', got {skip!r}")
    if on_bad not in ("report", "fail"):
        raise ConfigError(f"on_bad must be 'report' or 'fail', got {on_bad!r}")
    started = time.perf_counter()
    the_lake = lake if isinstance(lake, Lake) else Lake.create(lake)
    the_lake._require_writable()
    connector = registry.get(format) if isinstance(format, str) else format
    options = options or SourceOptions()
    units = connector.list_units(source, options)
    report = RayIngestReport(units=len(units))
    if not units:
        report.version = the_lake.version
        return report
    with ray_session(address, num_cpus=num_cpus):
        import ray.data

        ctx = _quiet_data_context()
        ctx.max_errored_blocks = 0
        ctx.retried_map_errors = max_retries > 0  # application errors too; a dead worker is retried by Ray core
        ctx.max_map_retries = max_retries
        items = ray.data.from_items([{"unit": u} for u in units], override_num_blocks=len(units))
        staged = items.map_batches(
            _stage_batch, batch_size=1, zero_copy_batch=True,
            fn_kwargs={"connector": connector, "options": options, "lake_uri": the_lake.uri,
                       "storage_options": the_lake.storage_options, "skip": skip, "max_episodes": max_episodes},
            num_cpus=1)
        wave = _Wave()
        finished: set[str] = set()
        try:
            for record in staged.iter_rows():
                wave.add(record)
                report.episodes_unchanged += int(record["n_unchanged"])
                report.bad.extend(json.loads(record["bad"]))
                if on_bad == "fail" and report.bad:
                    first = report.bad[0]
                    raise IngestError(f"bad episode in {first['file']} ({first['record']}): {first['reason']}; "
                                      "nothing was committed from this wave (use on_bad='report' to skip it)")
                finished.add(record["unit"])
                if progress is not None:
                    progress("units", len(finished), len(units))
                if wave.episodes >= commit_every:
                    _commit_wave(the_lake, wave, report)
                    wave = _Wave()
        except IngestError:
            raise
        except Exception as exc:  # a unit that failed after its retries: committed waves stay, nothing else
            raise IngestError(f"distributed ingest of {source} failed: {exc}; {report.episodes_written} episodes "
                              "were committed before; re-run the same command to resume") from exc
        _commit_wave(the_lake, wave, report)
    if progress is not None:
        progress("commit", len(units), len(units))
    report.version = report.version if report.version is not None else the_lake.refresh().version
    report.seconds = round(time.perf_counter() - started, 3)
    report.episodes_per_s = round(report.episodes_written / report.seconds, 1) if report.seconds else 0.0
    return report
