"""The ingest engine: sources -> connectors -> validated, quality-flagged episodes -> the lake.

- Generic over every registered connector: a source's format is given or detected by `probe`; the connector lists
  work units (shards, files) and streams episodes from each.
- Parallel: with `workers > 1` units are converted in a process pool; each worker also stages the steps and frames
  of its episodes in the lake (concurrent Lance appends, invisible until committed) and sends only the episode
  rows through a bounded queue; the parent is the one committer. Memory stays bounded whatever the dataset size.
- Idempotent: an episode whose source fingerprint is already stored is skipped as unchanged; a changed one
  replaces its row (the old row stays readable through the lake's history).
- Resumable: steps/frames are staged first and an episode row is committed after them, one Lance commit per batch,
  so a run killed at any point leaves only complete episodes visible; running it again adds the rest.
- Error policy: by default a bad episode is reported and skipped; `strict=True` stops at the first one and
  commits nothing of the run (every batch is staged and the episode rows are committed once, at the end).

`convert_unit` (one unit -> checked episodes) is a plain top-level function, separate from committing, so the
same per-unit work can run elsewhere (e.g. on Ray).
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import queue
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from connectors import registry
from connectors.base import BadEpisode, SourceOptions, StepLayout
from curate.errors import CurateError, IngestError
from curate.quality import quality_flags
from schemas import Episode
from schemas.columns import frame_bytes

if TYPE_CHECKING:
    from curate.lake import Lake

BATCH_EPISODES = 1024
BATCH_BYTES = 96 * 1024 * 1024
"""Commit a batch at this many episodes or this many bytes of frames, whichever comes first. Each commit looks the
batch's ids up in the episodes table and adds a fragment to each table, so small batches make a large ingest slow
(per-commit costs grow with the lake); the byte cap keeps memory bounded whatever the episode size."""
WORKER_BATCH_BYTES = 32 * 1024 * 1024
"""A worker stages a batch once its frames reach this many bytes (or `batch_episodes` episodes)."""
QUEUE_CHUNKS_PER_WORKER = 2
GC_THRESHOLD = 100_000
"""Allocations between young-generation garbage collections during an ingest (Python's default is 700)."""

EXIT_CODES = {
    0: "every episode ingested (or skipped as unchanged)",
    1: "the run finished but some episodes were rejected (see the report)",
    2: "usage error: bad option, unknown format, or a source no connector recognises",
    3: "the lake cannot be opened (not a lake, newer schema version)",
    7: "ingest stopped: --strict hit a bad episode (nothing of the run was committed) or a source is unreadable",
    130: "interrupted (Ctrl-C); what was committed stays, run again to resume",
}


class SourceNotRecognisedError(CurateError, ValueError):
    """No registered connector's probe accepts a source, or several do and --format was not given."""

    exit_code = 2


@dataclass(frozen=True)
class WorkUnit:
    """One independent piece of a source: a connector name, the source it belongs to, the unit and options."""

    format: str
    source: str
    unit: str
    options: SourceOptions


@dataclass
class DatasetCounts:
    """Per-dataset outcome of a run."""

    episodes: int = 0
    steps: int = 0
    unchanged: int = 0
    replaced: int = 0
    rejected: int = 0


@dataclass
class Rejection:
    """One rejected episode: where it is and why."""

    dataset: str
    file: str
    record: str
    reason: str


@dataclass
class IngestProgress:
    """What a progress callback receives after each unit chunk and commit."""

    episodes: int
    steps: int
    unchanged: int
    rejected: int
    units_done: int
    units_total: int
    elapsed_s: float

    @property
    def episodes_per_s(self) -> float:
        return self.episodes / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass
class IngestReport:
    """The outcome of `ingest`: counts per dataset, every rejected episode, warnings, and the lake version."""

    lake: str
    sources: list[str]
    formats: dict[str, str] = field(default_factory=dict)
    datasets: dict[str, DatasetCounts] = field(default_factory=dict)
    rejections: list[Rejection] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    units: int = 0
    version: int | None = None
    committed: bool = True
    stopped: str | None = None
    seconds: float = 0.0

    def counts(self, dataset: str) -> DatasetCounts:
        return self.datasets.setdefault(dataset, DatasetCounts())

    @property
    def episodes(self) -> int:
        return sum(c.episodes for c in self.datasets.values())

    @property
    def steps(self) -> int:
        return sum(c.steps for c in self.datasets.values())

    @property
    def unchanged(self) -> int:
        return sum(c.unchanged for c in self.datasets.values())

    @property
    def rejected(self) -> int:
        return len(self.rejections)

    @property
    def exit_code(self) -> int:
        if self.stopped:
            return 7
        return 1 if self.rejections else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "lake": self.lake, "sources": self.sources, "formats": self.formats, "units": self.units,
            "version": self.version, "committed": self.committed, "stopped": self.stopped,
            "seconds": round(self.seconds, 3),
            "totals": {"episodes": self.episodes, "steps": self.steps, "unchanged": self.unchanged,
                       "rejected": self.rejected},
            "datasets": {name: asdict(c) for name, c in sorted(self.datasets.items())},
            "rejections": [asdict(r) for r in self.rejections],
            "warnings": self.warnings,
            "exit_code": self.exit_code,
        }


# ------------------------------------------------------------------------------------------------ planning
def detect_format(source: str) -> str:
    """The one connector that recognises `source`.

    Raises:
        SourceNotRecognisedError: none or several do.
    """
    found = registry.detect(source)
    if not found:
        known = ", ".join(registry.names()) or "(none installed)"
        raise SourceNotRecognisedError(
            f"no connector recognises {source!r}; check the path, or pass --format (known formats: {known})")
    if len(found) > 1:
        raise SourceNotRecognisedError(
            f"{source!r} looks like several formats ({', '.join(found)}); pass --format to choose one")
    return found[0]


def plan_units(sources: Iterable[str], *, format: str = "auto", dataset: str | None = None,
               splits: Iterable[str] = (), limit: int | None = None, extra: dict[str, Any] | None = None,
               layout: StepLayout = "columns") -> tuple[list[WorkUnit], dict[str, str]]:
    """The work units of every source, and the format used for each source.

    `layout` says what the units' episodes may be: "columns" (the default; connectors that can hand over Arrow
    columns do) or "objects" (Step objects only, the reference path).

    Raises:
        SourceNotRecognisedError: a source's format cannot be determined, or `format` names no connector.
        IngestError: a source cannot be listed (permissions, network, malformed index files).
    """
    units: list[WorkUnit] = []
    formats: dict[str, str] = {}
    for source in sources:
        source = str(source)
        name = detect_format(source) if format == "auto" else format
        try:
            connector = registry.get(name)
        except registry.UnknownConnectorError as exc:
            raise SourceNotRecognisedError(str(exc).strip("'\"")) from None
        options = SourceOptions(dataset=dataset, splits=tuple(splits), limit=limit, extra=dict(extra or {}),
                                layout=layout)
        formats[source] = name
        try:
            found = connector.list_units(source, options)
        except (OSError, ValueError) as exc:
            raise IngestError(f"cannot list the contents of {source!r} ({name}): {type(exc).__name__}: {exc}") from exc
        if not found:
            raise SourceNotRecognisedError(f"{source!r} holds no {name} data (no work units found)")
        units.extend(WorkUnit(name, source, unit, options) for unit in found)
    return units, formats


# ------------------------------------------------------------------------------------------------ per-unit work
def check_episode(episode: Episode) -> str | None:
    """Why an episode cannot be stored, or None. (Pydantic already validated each field.)"""
    if episode.columns is not None:
        return _check_columns(episode)
    if episode.steps and len(episode.steps) != episode.n_steps:
        return f"n_steps is {episode.n_steps} but {len(episode.steps)} steps were produced"
    for i, step in enumerate(episode.steps):
        if step.index != i:
            return f"step {i} has index {step.index}"
    declared = {c.name for c in episode.cameras}
    for step in episode.steps:
        for frame in step.frames:
            if frame.camera not in declared:
                return f"step {step.index} has a frame of undeclared camera {frame.camera!r}"
    return None


def _check_columns(episode: Episode) -> str | None:
    """`check_episode` for an episode carrying its steps as columns (the column types are already checked)."""
    columns = episode.columns
    if columns.n_steps != episode.n_steps:
        return f"n_steps is {episode.n_steps} but {columns.n_steps} steps were produced"
    index, _ = columns.numpy("steps", "index")
    wrong = np.flatnonzero(index != np.arange(len(index)))
    if wrong.size:
        return f"step {int(wrong[0])} has index {int(index[wrong[0]])}"
    if columns.frames.num_rows:
        steps, _ = columns.numpy("frames", "index")
        if steps.min() < 0 or steps.max() >= episode.n_steps:
            return "a frame belongs to a step the episode does not have"
        codes, names = columns.codes("frames", "camera")
        declared = {c.name for c in episode.cameras}
        undeclared = [code for code, name in enumerate(names) if name not in declared]
        if undeclared:
            rows = np.flatnonzero(np.isin(codes, undeclared))
            if rows.size:
                row = int(rows[0])
                return f"step {int(steps[row])} has a frame of undeclared camera {names[codes[row]]!r}"
    return None


def convert_unit(unit: WorkUnit) -> Iterator[Episode | BadEpisode]:
    """Read one work unit: its episodes, checked and quality-flagged, or a `BadEpisode` per damaged record.

    A plain function of its argument (no lake, no global state), so it runs in a worker process or on Ray.
    An exception escaping the connector becomes one BadEpisode for the whole unit.
    """
    connector = registry.get(unit.format)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for item in connector.episodes(unit.unit, unit.options):
                if isinstance(item, BadEpisode):
                    yield item
                    continue
                problem = check_episode(item)
                if problem is not None:
                    yield BadEpisode(file=item.source.uri, record=item.source.key, reason=problem)
                    continue
                item.quality_flags = sorted(set(item.quality_flags) | set(quality_flags(item)))
                yield item
        for w in caught:
            yield BadEpisode(file=unit.unit, record="warning", reason=f"warning: {w.message}")
    except Exception as exc:  # a connector failure: the whole unit is rejected, the rest of the run goes on
        yield BadEpisode(file=_unit_label(unit), record="*", reason=f"{type(exc).__name__}: {exc}")


@contextmanager
def _fewer_collections(threshold: int = GC_THRESHOLD) -> Iterator[None]:
    """Run the cyclic garbage collector rarely while ingesting, and restore its thresholds afterwards.

    A batch holds hundreds of thousands of small objects (steps, frames, their dicts and lists) that all live until
    the batch is written, so with the default threshold the collector scans them again and again for cycles they
    do not have: measured at 40% of the CPU time of a LeRobot ingest. Collections still happen (every `threshold`
    allocations), so memory held by real cycles stays bounded.
    """
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], threshold), old[1], old[2])
    try:
        yield
    finally:
        gc.set_threshold(*old)


def _unit_label(unit: WorkUnit) -> str:
    return unit.unit if len(unit.unit) < 300 else unit.unit[:300] + "..."


@dataclass
class StagedBatch:
    """What a worker converted and staged (steps and frames written, invisible until the writer commits `rows`).

    `entries` lists every episode of the batch in order as (episode_id, dataset, n_steps, status) with status
    "new", "replaced" or "unchanged" (unchanged ones were not staged).
    """

    rows: pa.Table | None
    entries: list[tuple[str, str, int, str]]


def stage_batch(lake: Lake, episodes: list[Episode]) -> StagedBatch:
    """Skip the episodes whose fingerprint the lake already holds; stage the others (last occurrence of an id wins)."""
    batch = {ep.episode_id: ep for ep in episodes}
    stored = lake.refresh().revisions(list(batch))
    entries: list[tuple[str, str, int, str]] = []
    fresh = []
    for ep in batch.values():
        if stored.get(ep.episode_id) == ep.source.fingerprint:
            entries.append((ep.episode_id, ep.dataset, ep.n_steps, "unchanged"))
        else:
            fresh.append(ep)
            entries.append((ep.episode_id, ep.dataset, ep.n_steps, "replaced" if ep.episode_id in stored else "new"))
    return StagedBatch(lake.stage_episodes(fresh) if fresh else None, entries)


def _worker(tasks: Any, results: Any, lake_uri: str, storage_options: dict[str, str], batch_episodes: int) -> None:
    """Process-pool worker: convert units from `tasks`, stage their steps/frames in the lake itself, and send the
    episode rows (small) and bad episodes to the writer, which alone commits."""
    from curate.lake import Lake

    lake = Lake(lake_uri, storage_options=storage_options)
    gc.set_threshold(max(gc.get_threshold()[0], GC_THRESHOLD), *gc.get_threshold()[1:])  # see _fewer_collections
    while True:
        item = tasks.get()
        if item is None:
            return
        index, unit = item
        pending: list[Episode] = []
        size = 0
        try:
            for out in convert_unit(unit):
                if isinstance(out, BadEpisode):
                    results.put(("items", index, [out]))
                    continue
                pending.append(out)
                size += frame_bytes(out)
                if size >= WORKER_BATCH_BYTES or len(pending) >= batch_episodes:
                    results.put(("staged", index, stage_batch(lake, pending)))
                    pending, size = [], 0
            if pending:
                results.put(("staged", index, stage_batch(lake, pending)))
            results.put(("done", index, None))
        except BaseException as exc:  # keep the writer informed whatever happens
            results.put(("items", index, [BadEpisode(file=_unit_label(unit), record="*",
                                                     reason=f"{type(exc).__name__}: {exc}")]))
            results.put(("done", index, None))


def _stream_inline(units: list[WorkUnit]) -> Iterator[tuple[str, int, list[Episode | BadEpisode] | None]]:
    for index, unit in enumerate(units):
        for out in convert_unit(unit):
            yield "items", index, [out]
        yield "done", index, None


class _Pool:
    """Worker processes fed from a task queue; results come back through a bounded queue.

    Workers fork from a fork server that imported the connectors once (never from this process, which may hold
    Lance/Polars threads); where fork is unavailable they are spawned.
    """

    def __init__(self, units: list[WorkUnit], workers: int, *, lake: Lake, batch_episodes: int) -> None:
        if "forkserver" in mp.get_all_start_methods():
            ctx = mp.get_context("forkserver")
            ctx.set_forkserver_preload(["curate.ingest", *registry._BUILTIN_MODULES])  # warm: import once
        else:
            ctx = mp.get_context("spawn")
        self.tasks = ctx.Queue()
        self.results = ctx.Queue(maxsize=max(2, workers * QUEUE_CHUNKS_PER_WORKER))
        for item in enumerate(units):
            self.tasks.put(item)
        for _ in range(workers):
            self.tasks.put(None)
        args = (self.tasks, self.results, lake.uri, lake.storage_options, batch_episodes)
        self.procs = [ctx.Process(target=_worker, args=args, daemon=True) for _ in range(workers)]
        for p in self.procs:
            p.start()
        self.total = len(units)

    def stream(self) -> Iterator[tuple[str, int, Any]]:
        done = 0
        while done < self.total:
            try:
                kind, index, payload = self.results.get(timeout=1.0)
            except queue.Empty:
                if not any(p.is_alive() for p in self.procs):
                    raise IngestError("every ingest worker exited before the work was done") from None
                continue
            if kind == "done":
                done += 1
            yield kind, index, payload

    def close(self) -> None:
        for p in self.procs:
            if p.is_alive():
                p.terminate()
        for p in self.procs:
            p.join(timeout=5)
        self.results.cancel_join_thread()
        self.tasks.cancel_join_thread()


# ------------------------------------------------------------------------------------------------ the run
class _Spool:
    """Staged episode rows of a strict run, kept on local disk until the single final commit."""

    def __init__(self) -> None:
        fd, self.path = tempfile.mkstemp(prefix="curate-ingest-", suffix=".arrow")
        os.close(fd)
        self.writer: pa.ipc.RecordBatchFileWriter | None = None

    def add(self, table: pa.Table) -> None:
        if self.writer is None:
            self.writer = pa.ipc.new_file(self.path, table.schema)
        self.writer.write_table(table)

    def table(self) -> pa.Table | None:
        if self.writer is None:
            return None
        self.writer.close()
        self.writer = None
        return pa.ipc.open_file(pa.memory_map(self.path)).read_all()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        Path(self.path).unlink(missing_ok=True)


@_fewer_collections()
def ingest(
    sources: str | Iterable[str],
    *,
    lake: str | Lake,
    format: str = "auto",
    dataset: str | None = None,
    splits: Iterable[str] = (),
    workers: int = 1,
    limit: int | None = None,
    strict: bool = False,
    on_error: str | None = None,
    progress: Callable[[IngestProgress], None] | None = None,
    extra: dict[str, Any] | None = None,
    batch_episodes: int = BATCH_EPISODES,
    layout: StepLayout = "columns",
) -> IngestReport:
    """Ingest sources into a lake (created if missing).

    Args:
        sources: paths or URIs (local, s3://, gs://, memory://); each is probed unless `format` is given.
        lake: the lake URI or an open `Lake`.
        format: a connector name, or "auto" to detect each source.
        dataset: override the dataset name the connector would choose.
        splits: only these splits (connectors that know splits honour it).
        workers: processes converting units in parallel (1 = in this process).
        limit: stop after this many source episodes (good or bad) in total.
        strict: same as on_error="stop": the first bad episode stops the run and nothing of it is committed.
        on_error: "skip" (report and go on, the default) or "stop".
        progress: called with an `IngestProgress` as work advances.
        extra: connector-specific options (`SourceOptions.extra`).
        batch_episodes: episodes per commit (smaller: finer-grained resume, more lake versions).
        layout: "columns" lets connectors hand steps over as Arrow columns (faster; same lake rows), "objects"
            asks every connector for Step objects.

    Returns:
        The `IngestReport`; `report.exit_code` says how the CLI should exit.

    Raises:
        SourceNotRecognisedError: a source matches no connector (or several).
        IngestError: with `strict`, the first bad episode; the report is attached as `exc.report`.
    """
    policy = on_error or ("stop" if strict else "skip")
    if policy not in ("skip", "stop"):
        raise ValueError(f"on_error must be 'skip' or 'stop', got {policy!r}")
    started = time.perf_counter()
    source_list = [sources] if isinstance(sources, (str, os.PathLike)) else [str(s) for s in sources]
    source_list = [str(s) for s in source_list]
    from curate.lake import Lake, vacuum

    units, formats = plan_units(source_list, format=format, dataset=dataset, splits=splits, limit=limit, extra=extra,
                                layout=layout)
    the_lake = lake if isinstance(lake, Lake) else Lake.create(str(lake))
    report = IngestReport(lake=the_lake.uri, sources=source_list, formats=formats, units=len(units))
    spool = _Spool() if policy == "stop" else None
    pending: list[Episode] = []
    pending_bytes = 0
    seen = 0
    units_done = 0
    unit_dataset: dict[int, str] = {}
    staged_any = False

    def emit() -> None:
        if progress is not None:
            progress(IngestProgress(report.episodes, report.steps, report.unchanged, report.rejected, units_done,
                                    len(units), time.perf_counter() - started))

    def flush() -> None:
        nonlocal pending, pending_bytes, staged_any
        if not pending:
            return
        batch = {ep.episode_id: ep for ep in pending}
        stored = the_lake.revisions(list(batch))
        fresh = []
        for ep in batch.values():
            if stored.get(ep.episode_id) == ep.source.fingerprint:
                report.counts(ep.dataset).unchanged += 1
            else:
                fresh.append(ep)
        pending, pending_bytes = [], 0
        if not fresh:
            return
        rows = the_lake.stage_episodes(fresh)
        staged_any = True
        for ep in fresh:
            counts = report.counts(ep.dataset)
            counts.episodes += 1
            counts.steps += ep.n_steps
            if ep.episode_id in stored:
                counts.replaced += 1
        if spool is not None:
            spool.add(rows)
        else:
            result = the_lake.commit_staged(rows)
            report.version = result.version
        emit()

    def take_staged(index: int, batch: StagedBatch) -> None:
        nonlocal seen, staged_any
        entries = batch.entries if limit is None else batch.entries[: max(0, limit - seen)]
        seen += len(entries)
        new_ids = []
        for episode_id, name, n_steps, status in entries:
            counts = report.counts(name)
            unit_dataset[index] = name
            if status == "unchanged":
                counts.unchanged += 1
                continue
            new_ids.append(episode_id)
            counts.episodes += 1
            counts.steps += n_steps
            counts.replaced += status == "replaced"
        if not new_ids or batch.rows is None:
            return
        rows = batch.rows
        if len(entries) < len(batch.entries):
            rows = rows.filter(pc.is_in(rows.column("episode_id"), value_set=pa.array(new_ids)))
        staged_any = True
        if spool is not None:
            spool.add(rows)
        else:
            report.version = the_lake.commit_staged(rows).version
        emit()

    pool = None
    if workers > 1 and len(units) > 1:
        the_lake.ensure_tables()
        pool = _Pool(units, workers, lake=the_lake, batch_episodes=batch_episodes)
    stream = pool.stream() if pool is not None else _stream_inline(units)
    try:
        for kind, index, payload in stream:
            if kind == "done":
                units_done += 1
                emit()
                continue
            if kind == "staged":
                take_staged(index, payload)
                if limit is not None and seen >= limit:
                    break
                continue
            for item in payload or []:
                if limit is not None and seen >= limit:
                    break
                if isinstance(item, BadEpisode) and item.record == "warning":
                    if item.reason not in report.warnings:
                        report.warnings.append(item.reason)
                    continue
                seen += 1
                if isinstance(item, BadEpisode):
                    unit = units[index]
                    name = unit_dataset.get(index) or unit.options.dataset or _source_name(unit.source)
                    report.counts(name).rejected += 1
                    report.rejections.append(Rejection(name, item.file, item.record, item.reason))
                    if policy == "stop":
                        report.stopped = f"{item.file} record {item.record}: {item.reason}"
                        break
                    continue
                unit_dataset[index] = item.dataset
                pending.append(item)
                pending_bytes += frame_bytes(item)
                if len(pending) >= batch_episodes or pending_bytes >= BATCH_BYTES:
                    flush()
            if report.stopped or (limit is not None and seen >= limit):
                break
        if not report.stopped:
            flush()
            if spool is not None:
                rows = spool.table()
                if rows is not None:
                    report.version = the_lake.commit_staged(rows).version
    finally:
        if pool is not None:
            pool.close()
        if spool is not None:
            spool.close()
    if report.stopped:
        report.committed = False
        if staged_any:
            vacuum(the_lake)
        report.version = the_lake.refresh().version
        report.seconds = time.perf_counter() - started
        error = IngestError(f"--strict: stopped at the first bad episode ({report.stopped}); "
                            "nothing of this run was committed")
        error.report = report  # type: ignore[attr-defined]
        raise error
    if report.version is None:
        report.version = the_lake.refresh().version
    if report.episodes:
        the_lake.index_revisions()
    report.seconds = time.perf_counter() - started
    emit()
    return report


def _source_name(source: str) -> str:
    return source.rstrip("/").split("/")[-1] or source
