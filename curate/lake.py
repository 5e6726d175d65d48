"""The lake: Lance tables on a local directory or any object-store URI, and the one place that knows its layout.

Layout (see docs/lake-format.md)::

    <lake>/lake.json        {"format": "curate-lake", "schema_version": N, "created_at": ...}
    <lake>/episodes.lance   one row per episode: schemas.EPISODES_SCHEMA + `revision`
    <lake>/steps.lance      one row per step: schemas.STEPS_SCHEMA, keyed by (episode_id, revision, index)
    <lake>/frames.lance     one row per (step, camera): schemas.FRAMES_SCHEMA, bytes or a video reference
    <lake>/labels.lance     append-only schemas.LabelEvent rows

Atomicity: an episode becomes visible only when its row is committed to `episodes` (a single Lance
commit per batch). Its steps and frames are appended first under a fresh `revision`; a writer killed in between
leaves step rows no episode points to: invisible, reported by `doctor`, removed by `vacuum`.
The lake version is the version of the `episodes` table; old versions stay readable (time travel).
"""

from __future__ import annotations

import functools
import json
import os
import re
import typing
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import lance
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import PrivateAttr

from curate.errors import (
    EpisodeNotFoundError,
    LabelConflictError,
    NotALakeError,
    ReadOnlyError,
    SchemaVersionError,
)
from curate.filters import compile_filter, fields_of, parse_filter
from curate.objectstore import url_to_fs
from schemas import (
    EPISODES_SCHEMA,
    FRAMES_SCHEMA,
    LABEL_FIELDS,
    LABELS_SCHEMA,
    SCHEMA_VERSION,
    STEPS_SCHEMA,
    Episode,
    Frame,
    LabelEvent,
    Step,
)
from schemas.arrow import model_to_row, row_builder, row_to_dict, row_to_model
from schemas.columns import EpisodeColumns, frame_bytes, keyed_columns
from schemas.episode import EPISODE_ROW_EXCLUDE

DEFAULT_LAKE = "./lake"
LAKE_ENV = "CURATE_LAKE"
MARKER = "lake.json"
EPISODES, STEPS, FRAMES, LABELS = "episodes", "steps", "frames", "labels"
LAKE_EPISODES_SCHEMA = EPISODES_SCHEMA.append(pa.field("revision", pa.string(), nullable=False))
TABLE_SCHEMAS = {EPISODES: LAKE_EPISODES_SCHEMA, STEPS: STEPS_SCHEMA, FRAMES: FRAMES_SCHEMA, LABELS: LABELS_SCHEMA}
TABLE_FILE_FORMATS = {FRAMES: "2.0"}
"""Lance file format of a new table where Lance's default (2.2) is not the best fit. Frames are opaque encoded bytes
read in scans (export, embedding): measured on 50 KB values, file format 2.0 writes ~5x and scans ~1.7x faster than
2.2 (which shines on nested and small values: every other table keeps it); a random `take` of 50 frames costs ~11 ms
instead of ~4. A table keeps the format it was created with."""
BATCH_BYTES = 256 * 1024 * 1024
"""Commit a write batch once its frames reach this many bytes, so memory stays bounded."""
REVISION_INDEX_MIN_ROWS = 100_000
"""Rows of a steps or frames table from which ingest keeps a BTree index on `revision` (`Lake.index_revisions`)."""
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,200}$")
LIST_COLUMNS = ("episode_id", "dataset", "instruction", "n_steps")
POSITION = "_position"


def default_lake_uri() -> str:
    """`$CURATE_LAKE`, else ./lake."""
    return os.environ.get(LAKE_ENV) or DEFAULT_LAKE


def storage_options_from_env(uri: str) -> dict[str, str]:
    """Object-store options for Lance, from the usual AWS_* variables (endpoint, keys, region)."""
    if not uri.startswith(("s3://", "s3a://")):
        return {}
    opts: dict[str, str] = {}
    env_map = {
        "AWS_ENDPOINT_URL": "aws_endpoint",
        "AWS_ACCESS_KEY_ID": "aws_access_key_id",
        "AWS_SECRET_ACCESS_KEY": "aws_secret_access_key",
        "AWS_SESSION_TOKEN": "aws_session_token",
        "AWS_REGION": "aws_region",
        "AWS_DEFAULT_REGION": "aws_region",
    }
    for env, key in env_map.items():
        if os.environ.get(env) and key not in opts:
            opts[key] = os.environ[env]
    if opts.get("aws_endpoint", "").startswith("http://"):
        opts["allow_http"] = "true"
    return opts


def check_id(episode_id: str) -> str:
    """Episode ids go into Lance predicates, so only a safe alphabet is accepted."""
    if not isinstance(episode_id, str) or not _SAFE_ID.match(episode_id):
        raise EpisodeNotFoundError(f"{episode_id!r} is not a valid episode id (ids look like ep_0123abcd...)")
    return episode_id


@dataclass
class WriteResult:
    """What one `write_episodes` call committed."""

    episodes: int = 0
    steps: int = 0
    replaced: int = 0
    version: int | None = None
    episode_ids: list[str] = field(default_factory=list)


class LazyFrame(Frame):
    """A frame whose bytes are read from the lake on first access."""

    _load: Callable[[], bytes | None] | None = PrivateAttr(default=None)

    def read_bytes(self) -> bytes:
        if self.data is None and self._load is not None:
            data = self._load()
            if data is not None:
                return data
        return super().read_bytes()


class Lake:
    """A lake of episodes at `uri`. Open an existing one with `Lake(uri)`; make one with `Lake.create(uri)`.

    Args:
        uri: local directory or object-store URI; default `$CURATE_LAKE` or ./lake.
        version: read the lake as of this episodes-table version (time travel); read-only.
        labels_version: read label events as of this labels-table version (0: before any event).
        read_only: refuse every write (the UI's --read-only mode).
        storage_options: object-store options for Lance; default from AWS_* environment variables.

    Raises:
        NotALakeError: nothing at `uri` looks like a lake.
        SchemaVersionError: the lake was written by a newer schema version.
    """

    def __init__(
        self,
        uri: str | os.PathLike[str] | None = None,
        *,
        version: int | None = None,
        labels_version: int | None = None,
        read_only: bool = False,
        storage_options: dict[str, str] | None = None,
    ) -> None:
        self.uri = str(uri or default_lake_uri()).rstrip("/")
        self.storage_options = storage_options if storage_options is not None else storage_options_from_env(self.uri)
        self.read_only = read_only or version is not None
        self._version = version
        self._labels_version = labels_version
        self._fs, self._root = url_to_fs(self.uri, storage_options=self.storage_options)
        self.info = self._read_marker()
        self._datasets: dict[str, lance.LanceDataset] = {}
        if version is not None:
            self._dataset(EPISODES)  # fail early on a version that does not exist

    # ---------------------------------------------------------------------------------------------- layout
    def table_uri(self, name: str) -> str:
        return f"{self.uri}/{name}.lance"

    def _read_marker(self) -> dict[str, Any]:
        path = f"{self._root}/{MARKER}"
        try:
            with self._fs.open(path, "r") as fh:
                info = json.load(fh)
        except FileNotFoundError:
            raise NotALakeError(
                f"{self.uri} is not a lake (no {MARKER}); create one with `curate demo --lake {self.uri}` "
                f"or `curate ingest SOURCE --lake {self.uri}`"
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise NotALakeError(f"{self.uri}/{MARKER} is not valid JSON ({exc}); run `curate doctor`") from None
        if info.get("format") != "curate-lake":
            raise NotALakeError(f"{self.uri}/{MARKER} does not describe a curate lake")
        found = info.get("schema_version")
        if not isinstance(found, int) or found > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"lake {self.uri} has schema version {found}, newer than this curate ({SCHEMA_VERSION}); "
                "upgrade with `pip install -U curate-robot-data`"
            )
        return info

    @classmethod
    def create(cls, uri: str | os.PathLike[str] | None = None, *, exist_ok: bool = True,
               storage_options: dict[str, str] | None = None) -> Lake:
        """Open the lake at `uri`, creating an empty one if there is none."""
        uri = str(uri or default_lake_uri()).rstrip("/")
        opts = storage_options if storage_options is not None else storage_options_from_env(uri)
        fs, root = url_to_fs(uri, storage_options=opts)
        marker = f"{root}/{MARKER}"
        if fs.exists(marker):
            if not exist_ok:
                raise FileExistsError(f"a lake already exists at {uri}")
            return cls(uri, storage_options=opts)
        fs.makedirs(root, exist_ok=True)
        info = {"format": "curate-lake", "schema_version": SCHEMA_VERSION,
                "created_at": datetime.now(UTC).isoformat()}
        with fs.open(marker, "w") as fh:
            json.dump(info, fh, indent=2)
        return cls(uri, storage_options=opts)

    @classmethod
    def exists(cls, uri: str | os.PathLike[str], *, storage_options: dict[str, str] | None = None) -> bool:
        uri = str(uri).rstrip("/")
        opts = storage_options if storage_options is not None else storage_options_from_env(uri)
        fs, root = url_to_fs(uri, storage_options=opts)
        return fs.exists(f"{root}/{MARKER}")

    # ---------------------------------------------------------------------------------------------- tables
    def _dataset(self, name: str, *, refresh: bool = False) -> lance.LanceDataset | None:
        if name in self._datasets and not refresh:
            return self._datasets[name]
        version = self._version if name == EPISODES else self._labels_version if name == LABELS else None
        if name == LABELS and version == 0:
            return None  # pinned to before the first label event
        try:
            ds = lance.dataset(self.table_uri(name), version=version, storage_options=self.storage_options)
        except (ValueError, OSError, RuntimeError) as exc:
            if version is not None and name == EPISODES:
                raise NotALakeError(f"lake {self.uri} has no version {version}: {exc}") from None
            if "not found" in str(exc).lower() or "does not exist" in str(exc).lower():
                return None
            raise
        self._datasets[name] = ds
        return ds

    def _empty(self, name: str) -> pa.Table:
        return TABLE_SCHEMAS[name].empty_table()

    def _require_writable(self) -> None:
        if self.read_only:
            raise ReadOnlyError(f"lake {self.uri} is open read-only; writes are refused")

    def _append(self, name: str, table: pa.Table) -> lance.LanceDataset:
        ds = self._dataset(name, refresh=True)
        # One chunk per column: Lance pays ~0.6 ms per incoming record batch, and a batch built from per-episode
        # slices has one per episode (measured: 100k frame rows in 5,000 chunks 3.6 CPU-s, combined first 0.4).
        table = table.cast(TABLE_SCHEMAS[name]).combine_chunks()
        if ds is None:
            ds = lance.write_dataset(table, self.table_uri(name), schema=TABLE_SCHEMAS[name], mode="create",
                                     storage_options=self.storage_options,
                                     data_storage_version=TABLE_FILE_FORMATS.get(name))
        else:
            ds = lance.write_dataset(table, self.table_uri(name), mode="append",
                                     storage_options=self.storage_options)
        self._datasets[name] = ds
        return ds

    @property
    def version(self) -> int:
        """The lake version: the version of the episodes table (0 for a lake with no episodes yet)."""
        ds = self._dataset(EPISODES)
        return 0 if ds is None else ds.version

    @property
    def labels_version(self) -> int:
        """The label-event high-water mark: the version of the labels table (0 when no label exists)."""
        ds = self._dataset(LABELS)
        return 0 if ds is None else ds.version

    def versions(self) -> list[dict[str, Any]]:
        """Every version of the lake (episodes table): version number, timestamp and row count."""
        ds = self._dataset(EPISODES)
        if ds is None:
            return []
        out = []
        for v in ds.versions():
            out.append({"version": v["version"], "timestamp": v["timestamp"]})
        return out

    def refresh(self) -> Lake:
        """Drop cached table handles so the next read sees the newest commit."""
        if self._version is None:
            self._datasets.clear()
        return self

    def table(self, name: str, *, refresh: bool = False) -> lance.LanceDataset | None:
        """The Lance dataset of one lake table (`episodes`, `steps`, `frames`, `labels`, or a table another
        component keeps in the lake, e.g. `derived`), as of this lake's version; None while it does not exist."""
        return self._dataset(name, refresh=refresh)

    def file_format(self, name: str) -> str | None:
        """The Lance file format new data files of table `name` must use: the table's own, or the format a new table
        gets (None: Lance's default)."""
        ds = self._dataset(name)
        return ds.data_storage_version if ds is not None else TABLE_FILE_FORMATS.get(name)

    def require_writable(self) -> None:
        """Raise ReadOnlyError when this lake was opened read-only (or at an old version)."""
        self._require_writable()

    def read_json(self, name: str) -> Any | None:
        """A small JSON file kept at the lake's root (e.g. `embeddings.json`); None when absent."""
        path = f"{self._root}/{name}"
        if not self._fs.exists(path):
            return None
        with self._fs.open(path, "r") as fh:
            return json.load(fh)

    def write_json(self, name: str, data: Any) -> None:
        """Replace a small JSON file at the lake's root."""
        self._require_writable()
        with self._fs.open(f"{self._root}/{name}", "w") as fh:
            json.dump(data, fh, indent=2, default=str)

    def rows(self, episode_ids: list[str], *, columns: Iterable[str] | None = None) -> pl.DataFrame:
        """The rows of these episodes (current labels and derived columns applied), in no particular order."""
        return self._rows_by_id(episode_ids, columns)

    # ---------------------------------------------------------------------------------------------- writes
    def write_episodes(self, episodes: Iterable[Episode], *, batch_size: int = 256,
                       on_batch: Callable[[WriteResult], None] | None = None) -> WriteResult:
        """Write (insert or replace by `episode_id`) episodes with their steps, one commit per batch.

        An episode with the same id replaces the previous row; the old row stays readable through
        `Lake(uri, version=old)`. Within a batch the last occurrence of an id wins.
        """
        self._require_writable()
        total = WriteResult()
        batch: list[Episode] = []
        batch_bytes = 0
        for episode in episodes:
            batch.append(episode)
            batch_bytes += frame_bytes(episode)
            if len(batch) >= batch_size or batch_bytes >= BATCH_BYTES:
                self._commit_batch(batch, total, on_batch)
                batch, batch_bytes = [], 0
        if batch:
            self._commit_batch(batch, total, on_batch)
        return total

    def _commit_batch(self, batch: list[Episode], total: WriteResult,
                      on_batch: Callable[[WriteResult], None] | None) -> None:
        result = self.commit_staged(self.stage_episodes(batch))
        total.episodes += result.episodes
        total.steps += result.steps
        total.replaced += result.replaced
        total.version = result.version
        total.episode_ids.extend(result.episode_ids)
        if on_batch is not None:
            on_batch(result)

    def stage_episodes(self, episodes: Iterable[Episode]) -> pa.Table:
        """Write the steps and frames of `episodes` without making them visible; return their episode rows.

        The rows become visible only through `commit_staged` (one atomic commit), so an ingest can stage many
        batches and commit them all at once, or not at all. Rows never committed are orphans `vacuum` removes.
        Within the given episodes the last occurrence of an id wins.
        """
        self._require_writable()
        rows, steps, frames = episode_tables(episodes)
        if steps.num_rows:
            self._append(STEPS, steps)
        if frames.num_rows:
            self._append(FRAMES, frames)
        return rows

    def ensure_tables(self) -> None:
        """Create the steps and frames tables (empty) if missing, so several processes can then stage concurrently
        (Lance resolves concurrent appends; two concurrent creates would collide)."""
        self._require_writable()
        for name in (STEPS, FRAMES):
            if self._dataset(name, refresh=True) is None:
                self._append(name, self._empty(name))

    def commit_staged(self, rows: pa.Table) -> WriteResult:
        """Make staged episode rows visible in one commit (insert, or replace by `episode_id`).

        Within `rows` the last occurrence of an id wins.
        """
        self._require_writable()
        result = WriteResult()
        if rows.num_rows == 0:
            result.version = self.version
            return result
        ids = rows.column("episode_id").to_pylist()
        if len(set(ids)) != len(ids):
            last = {episode_id: i for i, episode_id in enumerate(ids)}
            rows = rows.take(sorted(last.values()))
            ids = rows.column("episode_id").to_pylist()
        rows = rows.cast(LAKE_EPISODES_SCHEMA)
        existing = self._dataset(EPISODES, refresh=True)
        if existing is None:
            ds = self._append(EPISODES, rows)
        else:
            # merge_insert reports how many rows it updated: counting them beforehand would scan the whole
            # episodes table on every commit (quadratic over a large ingest).
            stats = (existing.merge_insert("episode_id").when_matched_update_all().when_not_matched_insert_all()
                     .execute(rows))
            result.replaced = int(stats["num_updated_rows"])
            ds = self._dataset(EPISODES, refresh=True)
        result.episodes = rows.num_rows
        result.steps = int(pc.sum(rows.column("n_steps")).as_py() or 0)
        result.version = ds.version
        result.episode_ids = ids
        return result

    def delete_episodes(self, episode_ids: Iterable[str]) -> int:
        """Remove episodes from the current version (their history stays readable). Returns the count."""
        self._require_writable()
        ids = [check_id(i) for i in episode_ids]
        ds = self._dataset(EPISODES, refresh=True)
        if ds is None or not ids:
            return 0
        n = ds.count_rows(filter=id_predicate("episode_id", ids))
        if n:
            ds.delete(id_predicate("episode_id", ids))
            self._dataset(EPISODES, refresh=True)
        return n

    # ---------------------------------------------------------------------------------------------- reads
    def revisions(self, episode_ids: Iterable[str] | None = None) -> dict[str, str]:
        """episode_id -> source fingerprint of the stored revision (for skipping unchanged episodes)."""
        ds = self._dataset(EPISODES)
        if ds is None:
            return {}
        flt = None
        if episode_ids is not None:
            ids = [check_id(i) for i in episode_ids]
            if not ids:
                return {}
            flt = id_predicate("episode_id", ids)
        table = ds.to_table(columns=["episode_id", "source"], filter=flt)
        sources = table.column("source").combine_chunks()
        fps = sources.field("fingerprint").to_pylist()
        return dict(zip(table.column("episode_id").to_pylist(), fps, strict=True))

    def schema(self) -> pa.Schema:
        """The columns a filter may name (the episodes table's, plus derived columns once computed)."""
        from curate.analytics.derived import extend_schema

        return extend_schema(self, LAKE_EPISODES_SCHEMA)

    def scan(self, *, where: str | None = None, columns: Iterable[str] | None = None,
             labels: bool = True, with_position: bool = False) -> pl.LazyFrame:
        """A lazy Polars frame of episodes (current labels applied), filtered by the filter language.

        Only the columns asked for and those the filter names are read. `with_position` adds the row's
        position in the episodes table (column `_position`) for a fast `take` of a page.
        """
        wanted = list(columns) if columns is not None else [n for n in self.schema().names]
        needed = set(wanted)
        if where and where.strip():
            needed |= fields_of(parse_filter(where))
        predicate = compile_filter(where, self.schema())
        latest = self._latest_labels() if labels else None
        derived = bool(needed - set(LAKE_EPISODES_SCHEMA.names))
        # episode_id is the widest column; read it only when it is wanted or needed for a join
        keyed = latest is not None or derived or with_position
        base_cols = [c for c in LAKE_EPISODES_SCHEMA.names if c in needed or (keyed and c == "episode_id")]
        ds = self._dataset(EPISODES)
        table = self._empty(EPISODES).select(base_cols) if ds is None else ds.to_table(columns=base_cols)
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        if with_position:
            frame = frame.with_row_index(POSITION)
            wanted = [POSITION, *wanted]
        if latest is not None:
            frame = self._apply_labels(frame, needed, latest)
        if derived:
            from curate.analytics.derived import join_derived

            frame = join_derived(self, frame, needed)
        return frame.lazy().filter(predicate).select([c for c in wanted if c in frame.columns])

    def episodes(self, where: str | None = None, *, columns: Iterable[str] | None = None,
                 limit: int | None = None, offset: int = 0, order_by: str | None = None) -> pl.DataFrame:
        """Episodes matching `where` as a Polars DataFrame (`.to_arrow()` for Arrow)."""
        lf = self.scan(where=where, columns=columns)
        if order_by:
            lf = lf.sort(order_by)
        if offset:
            lf = lf.slice(offset)
        if limit is not None:
            lf = lf.limit(limit)
        return lf.collect()

    def count(self, where: str | None = None) -> int:
        """Number of episodes matching `where`."""
        return self.scan(where=where, columns=[], with_position=True).select(pl.len()).collect().item()

    def page(self, where: str | None = None, *, limit: int = 50, offset: int = 0,
             columns: Iterable[str] | None = None) -> tuple[int, pl.DataFrame]:
        """(total matching, one page of rows): the filter runs on the filter's columns only, then the
        page's rows are fetched by id, so a 1M-episode lake pages quickly."""
        positions = self.scan(where=where, columns=[], with_position=True).collect()[POSITION]
        total = len(positions)
        wanted = list(columns) if columns is not None else self.schema().names
        page_positions = positions.slice(offset, limit).to_list()
        ds = self._dataset(EPISODES)
        if not page_positions or ds is None:
            return total, self._empty_frame(wanted)
        base = [c for c in LAKE_EPISODES_SCHEMA.names if c in wanted or c == "episode_id"]
        frame = pl.from_arrow(ds.take(page_positions, columns=base))
        assert isinstance(frame, pl.DataFrame)
        frame = self._overlay(frame, set(wanted))
        return total, frame.select([c for c in wanted if c in frame.columns])

    def _empty_frame(self, columns: list[str]) -> pl.DataFrame:
        schema = self.schema()
        frame = pl.from_arrow(schema.empty_table())
        assert isinstance(frame, pl.DataFrame)
        return frame.select([c for c in columns if c in frame.columns])

    def _overlay(self, frame: pl.DataFrame, needed: set[str]) -> pl.DataFrame:
        """Current labels and derived columns on top of rows read from the episodes table."""
        latest = self._latest_labels()
        if latest is not None:
            frame = self._apply_labels(frame, needed, latest)
        if needed - set(LAKE_EPISODES_SCHEMA.names):
            from curate.analytics.derived import join_derived

            frame = join_derived(self, frame, needed)
        return frame

    def _rows_by_id(self, ids: list[str], columns: Iterable[str] | None = None) -> pl.DataFrame:
        ds = self._dataset(EPISODES)
        wanted = list(columns) if columns is not None else self.schema().names
        base = [c for c in LAKE_EPISODES_SCHEMA.names if c in wanted or c == "episode_id"]
        if ds is None:
            table = self._empty(EPISODES).select(base)
        else:
            table = ds.to_table(columns=base, filter=id_predicate("episode_id", [check_id(i) for i in ids]))
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        frame = self._overlay(frame, set(wanted))
        return frame.select([c for c in wanted if c in frame.columns])

    def episode(self, episode_id: str, *, steps: bool = True, frames: str = "lazy") -> Episode:
        """One episode with current labels applied and its steps; frame bytes load on first read.

        Args:
            frames: "lazy" (default) loads bytes on `frame.read_bytes()`, "eager" loads them now,
                "none" leaves them out.
        """
        rows = self._rows_by_id([check_id(episode_id)], columns=LAKE_EPISODES_SCHEMA.names)
        if rows.height == 0:
            raise EpisodeNotFoundError(
                f"episode {episode_id!r} is not in lake {self.uri}; list ids with `curate ls --lake {self.uri}`"
            )
        row = rows.row(0, named=True)
        revision = row.pop("revision")
        step_models = self._steps(episode_id, revision, frames=frames) if steps else []
        return row_to_model(Episode, row, steps=step_models)

    def _steps(self, episode_id: str, revision: str, *, frames: str) -> list[Step]:
        ds = self._dataset(STEPS)
        if ds is None:
            return []
        key = f"episode_id = '{check_id(episode_id)}' AND revision = '{check_id(revision)}'"
        rows = sorted(ds.to_table(filter=key).to_pylist(), key=lambda r: r["index"])
        by_step: dict[int, list[Frame]] = {}
        frames_ds = self._dataset(FRAMES)
        if frames != "none" and frames_ds is not None:
            columns = None if frames == "eager" else [n for n in FRAMES_SCHEMA.names if n != "data"]
            cache: dict[str, dict[tuple[int, str], bytes | None]] = {}

            def load(index: int, camera: str) -> bytes | None:
                # the first read of any frame fetches the episode's bytes in one scan
                if "bytes" not in cache:
                    table = frames_ds.to_table(columns=["index", "camera", "data"], filter=key)
                    cache["bytes"] = {(r["index"], r["camera"]): r["data"] for r in table.to_pylist()}
                return cache["bytes"].get((index, camera))

            for r in frames_ds.to_table(columns=columns, filter=key).to_pylist():
                fields = {k: r.get(k) for k in Frame.model_fields}
                if frames == "eager":
                    frame: Frame = Frame(**fields)
                else:
                    frame = LazyFrame(**fields)
                    frame._load = lambda i=r["index"], c=r["camera"]: load(i, c)
                by_step.setdefault(r["index"], []).append(frame)
        out = []
        for r in rows:
            body = {k: v for k, v in r.items() if k not in ("episode_id", "revision")}
            out.append(Step.model_validate({**row_to_dict(Step, body), "frames": by_step.get(r["index"], [])}))
        return out

    def frame_bytes(self, episode_id: str, step: int, camera: str) -> bytes | None:
        """The encoded bytes of one frame (None for a video reference or a camera the step lacks)."""
        row = self._rows_by_id([check_id(episode_id)], columns=["episode_id", "revision"])
        if row.height == 0:
            raise EpisodeNotFoundError(f"episode {episode_id!r} is not in lake {self.uri}")
        ds = self._dataset(FRAMES)
        if ds is None:
            return None
        flt = (f"episode_id = '{episode_id}' AND revision = '{check_id(row['revision'][0])}' "
               f"AND index = {int(step)}")
        for r in ds.to_table(columns=["camera", "data"], filter=flt).to_pylist():
            if r["camera"] == camera:
                return r["data"]
        return None

    def iter_steps(self, episode_ids: Iterable[str] | None = None, *, columns: Iterable[str] | None = None,
                   batch_size: int = 8192) -> Iterator[pa.RecordBatch]:
        """Stream step rows of the current revisions (optionally of some episodes), batch by batch."""
        current = self.scan(columns=["episode_id", "revision"], labels=False).collect()
        if episode_ids is not None:
            keep = set(episode_ids)
            current = current.filter(pl.col("episode_id").is_in(list(keep)))
        revisions = set(current["revision"].to_list())
        ds = self._dataset(STEPS)
        if ds is None or not revisions:
            return
        cols = list(columns) if columns is not None else STEPS_SCHEMA.names
        read_cols = list(dict.fromkeys([*cols, "revision"]))
        for batch in ds.to_batches(columns=read_cols, batch_size=batch_size):
            # a Python set, built once: `pc.is_in` rebuilt its hash table of every current revision per batch (1M
            # strings x 1,220 batches of a 1M-episode lake: minutes, where this takes seconds)
            mask = pa.array([r in revisions for r in batch.column("revision").to_pylist()], type=pa.bool_())
            out = batch.filter(mask)
            if out.num_rows:
                yield out.select(cols)

    def read_frames(self, keys: Iterable[tuple[str, int]], *, cameras: Iterable[str] | None = None,
                    columns: Iterable[str] | None = None, revisions: Iterable[str] | None = None) -> pa.Table:
        """Frame rows (current revisions) for many (episode_id, step index) keys in one scan.

        For bulk keyframe reads (embedding): one Lance query per call instead of one per episode. A caller that
        already holds the episodes' revisions (the embedding plan) passes them, saving a lookup in the episodes
        table per call (0.3 s at 1M episodes).
        """
        wanted = list(keys)
        cols = list(columns) if columns is not None else FRAMES_SCHEMA.names
        read_cols = list(dict.fromkeys(["episode_id", "index", "camera", *cols]))
        ds = self._dataset(FRAMES)
        if ds is None or not wanted:
            return FRAMES_SCHEMA.empty_table().select(read_cols)
        if revisions is not None:
            revs = sorted(set(revisions))
        else:
            ids = sorted({k[0] for k in wanted})
            revs = self._rows_by_id(ids, columns=["episode_id", "revision"])["revision"].to_list()
        if not revs:
            return FRAMES_SCHEMA.empty_table().select(read_cols)
        indices = sorted({int(k[1]) for k in wanted})
        flt = f"{id_predicate('revision', revs)} AND index IN ({', '.join(str(i) for i in indices)})"
        table = ds.to_table(columns=read_cols, filter=flt)
        key_set = pa.array([f"{e}\x00{int(i)}" for e, i in wanted])
        joined = pc.binary_join_element_wise(table.column("episode_id"), pc.cast(table.column("index"), pa.string()),
                                             "\x00")
        mask = pc.is_in(joined, value_set=key_set)
        if cameras is not None:
            mask = pc.and_(mask, pc.is_in(table.column("camera"), value_set=pa.array(list(cameras))))
        return table.filter(mask)

    # ---------------------------------------------------------------------------------------------- stats
    def stats(self) -> dict[str, Any]:
        """Totals for `curate stats`: episodes, steps, hours, per dataset and embodiment."""
        frame = self.episodes(columns=["dataset", "embodiment", "n_steps", "duration_s"])
        per_dataset = (frame.group_by("dataset").agg(pl.len().alias("episodes"), pl.col("n_steps").sum().alias("steps"),
                                                     (pl.col("duration_s").sum() / 3600).alias("hours"))
                       .sort("dataset"))
        robots = frame.select(pl.col("embodiment").struct.field("robot")).to_series()
        return {
            "lake": self.uri,
            "version": self.version,
            "labels_version": self.labels_version,
            "episodes": frame.height,
            "steps": int(frame["n_steps"].sum() or 0),
            "hours": round(float(frame["duration_s"].sum() or 0) / 3600, 4),
            "datasets": {r["dataset"]: r["episodes"] for r in per_dataset.iter_rows(named=True)},
            "embodiments": dict(sorted(robots.value_counts().iter_rows())) if frame.height else {},
            "per_dataset": [
                {"dataset": r["dataset"], "episodes": r["episodes"], "steps": int(r["steps"]),
                 "hours": round(float(r["hours"]), 4)}
                for r in per_dataset.iter_rows(named=True)
            ],
        }

    # ---------------------------------------------------------------------------------------------- labels
    def label_events(self, *, episode_id: str | None = None) -> list[LabelEvent]:
        """The label history (oldest first), of one episode or of the whole lake."""
        ds = self._dataset(LABELS)
        if ds is None:
            return []
        flt = f"episode_id = '{check_id(episode_id)}'" if episode_id else None
        rows = ds.to_table(filter=flt).to_pylist()
        events = [row_to_model(LabelEvent, r) for r in rows]
        return sorted(events, key=lambda e: (e.at, e.event_id))

    def _latest_labels(self) -> pl.DataFrame | None:
        ds = self._dataset(LABELS)
        if ds is None or ds.count_rows() == 0:
            return None
        table = ds.to_table(columns=["event_id", "episode_id", "field", "value", "at"])
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        return frame.sort(["at", "event_id"]).group_by(["episode_id", "field"], maintain_order=True).last()

    def _apply_labels(self, frame: pl.DataFrame, needed: set[str],
                      latest: pl.DataFrame | None = None) -> pl.DataFrame:
        latest = self._latest_labels() if latest is None else latest
        if latest is None:
            return frame
        for fld in sorted(set(latest["field"].unique().to_list()) & needed & set(frame.columns)):
            updates = latest.filter(pl.col("field") == fld).select("episode_id", "value")
            dtype = frame.schema[fld]
            decoded = [None if v is None else json.loads(v) for v in updates["value"].to_list()]
            new = pl.DataFrame({"episode_id": updates["episode_id"], "_new": pl.Series(decoded, dtype=dtype),
                                "_set": [True] * updates.height})
            frame = (frame.join(new, on="episode_id", how="left")
                     .with_columns(pl.when(pl.col("_set")).then(pl.col("_new")).otherwise(pl.col(fld)).alias(fld))
                     .drop("_new", "_set"))
        return frame

    def relabel(self, episode_ids: Iterable[str], field: str, value: Any, *, author: str,
                note: str | None = None, expected: dict[str, str | None] | None = None) -> list[LabelEvent]:
        """Set `field` to `value` on episodes: one LabelEvent each, appended in one commit.

        Args:
            expected: optimistic concurrency. For each episode, the id of the latest event on `field`
                the editor saw (None if it saw none). If someone saved since, nothing is written and
                LabelConflictError says what the field holds now.
        """
        self._require_writable()
        if field not in LABEL_FIELDS:
            raise ValueError(f"cannot relabel {field!r}; labelable fields: {', '.join(LABEL_FIELDS)}")
        ids = [check_id(i) for i in episode_ids]
        column = field
        current = self._rows_by_id(ids, columns=["episode_id", column]) if ids else None
        if current is None or current.height != len(set(ids)):
            found = set() if current is None else set(current["episode_id"].to_list())
            missing = [i for i in ids if i not in found]
            raise EpisodeNotFoundError(f"episode {missing[0]!r} is not in lake {self.uri}")
        latest_ids = self.latest_event_ids(ids, field)
        if expected is not None:
            for eid in ids:
                if eid in expected and expected[eid] != latest_ids.get(eid):
                    value_now = current.filter(pl.col("episode_id") == eid)[column][0]
                    raise LabelConflictError(
                        f"{field} of {eid} was changed by someone else since you loaded it (now: {value_now!r}); "
                        "reload, merge your change, and save again",
                        current=value_now, latest_event_id=latest_ids.get(eid))
        previous = {r["episode_id"]: r[column] for r in current.iter_rows(named=True)}
        validated = _validate_label_value(field, value)
        events = [LabelEvent(episode_id=eid, field=field, value=validated, previous=previous.get(eid),
                             author=author, note=note) for eid in dict.fromkeys(ids)]
        self._append(LABELS, pa.Table.from_pylist([model_to_row(e) for e in events], schema=LABELS_SCHEMA))
        return events

    def latest_event_ids(self, episode_ids: Iterable[str], field: str) -> dict[str, str]:
        """episode_id -> id of the latest label event on `field` (absent when never relabelled)."""
        latest = self._latest_labels()
        if latest is None:
            return {}
        sub = latest.filter((pl.col("field") == field) & pl.col("episode_id").is_in(list(episode_ids)))
        return dict(zip(sub["episode_id"].to_list(), sub["event_id"].to_list(), strict=True))

    def undo(self, event_id: str, *, author: str, note: str | None = None) -> LabelEvent:
        """Undo a label event by appending a new one that restores its `previous` value."""
        self._require_writable()
        events = {e.event_id: e for e in self.label_events()}
        if event_id not in events:
            raise EpisodeNotFoundError(f"label event {event_id!r} does not exist in lake {self.uri}")
        target = events[event_id]
        (event,) = self.relabel([target.episode_id], target.field, target.previous, author=author,
                                note=note or f"undo {event_id}")
        return event

    # ---------------------------------------------------------------------------------------------- upkeep
    def index_revisions(self, *, min_rows: int = REVISION_INDEX_MIN_ROWS) -> list[str]:
        """Keep a BTree index on `revision` of the steps and frames tables, the key every frame and step lookup
        filters on (`read_frames`, `Lake.episode`, exports, vacuum). Returns the tables whose index changed.

        Without it each lookup scans the column: at 1M episodes (10M frames) one embedding chunk's `read_frames`
        took 0.6 s, with it 0.18 s (docs/performance.md). Built once a table has `min_rows` rows (8.8 s for 10M
        rows here); afterwards only the fragments a run added are indexed (`optimize_indices`). The episodes table
        is left alone, so the lake version does not move.
        """
        self._require_writable()
        changed = []
        for name in (STEPS, FRAMES):
            ds = self._dataset(name, refresh=True)
            if ds is None or ds.count_rows() < min_rows:
                continue
            index = next((i.name for i in ds.describe_indices() if i.field_names == ["revision"]), None)
            if index is None:
                ds.create_scalar_index("revision", index_type="BTREE")
            elif ds.stats.index_stats(index)["num_unindexed_fragments"]:
                ds.optimize.optimize_indices(index_names=[index])
            else:
                continue
            changed.append(name)
            self._dataset(name, refresh=True)
        return changed

    def optimize(self) -> None:
        """Compact small fragments, (re)build the `episode_id` scalar index, and bring the `revision` indexes of
        steps and frames up to date (`index_revisions`), the keys an episode's steps and frames are found by."""
        self._require_writable()
        for name in (EPISODES, STEPS, FRAMES):
            ds = self._dataset(name, refresh=True)
            if ds is None:
                continue
            ds.optimize.compact_files()
            ds = self._dataset(name, refresh=True)
            ds.create_scalar_index("episode_id", index_type="BTREE", replace=True)
            self._dataset(name, refresh=True)
        self.index_revisions()


def episode_tables(episodes: Iterable[Episode]) -> tuple[pa.Table, pa.Table, pa.Table]:
    """(episode rows, step rows, frame rows) of some episodes, each keyed by a fresh revision: the lake's row layout.

    Episodes carrying columns (`episode.columns`) contribute their tables as they are, with the key columns
    prepended; episodes with Step objects are converted column by column. Within the given episodes the last
    occurrence of an id wins.
    """
    by_id = {ep.episode_id: ep for ep in episodes}
    episode_row = row_builder(Episode, exclude=EPISODE_ROW_EXCLUDE)
    rows = []
    keyed_steps: list[tuple[str, str, Step]] = []
    columnar: list[tuple[int, EpisodeColumns]] = []
    for ep in by_id.values():
        check_id(ep.episode_id)
        revision = f"{ep.revision[:16]}-{uuid.uuid4().hex[:12]}"
        row = episode_row(ep)
        row["revision"] = revision
        rows.append(row)
        if ep.columns is not None:
            columnar.append((len(rows) - 1, ep.columns))
        else:
            keyed_steps.extend((ep.episode_id, revision, step) for step in ep.steps)
    episode_rows = pa.Table.from_pylist(rows, schema=LAKE_EPISODES_SCHEMA)
    steps, frames = _step_table(keyed_steps), _frame_table(keyed_steps)
    if columnar:
        keyed_steps_table, keyed_frames_table = keyed_columns(
            episode_rows.select(["episode_id", "revision"]), [p for p, _ in columnar], [c for _, c in columnar])
        steps = _concat([steps, keyed_steps_table])
        frames = _concat([frames, keyed_frames_table])
    return episode_rows, steps, frames


def _concat(tables: list[pa.Table]) -> pa.Table:
    """The rows of several tables as one, leaving out empty ones (no copy)."""
    tables = [t for t in tables if t.num_rows] or tables[:1]
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


def _step_table(keyed_steps: list[tuple[str, str, Step]]) -> pa.Table:
    """The steps-table rows of (episode_id, revision, step) triples, built column by column: the same table as
    `model_to_row` + `from_pylist` per step, without per-row reflection (steps are the bulk of every write)."""
    values = [step.__dict__ for _, _, step in keyed_steps]
    columns: dict[str, list[Any]] = {"episode_id": [k[0] for k in keyed_steps], "revision": [k[1] for k in keyed_steps]}
    for name in STEPS_SCHEMA.names[2:]:
        convert = _step_converters()[name]
        column = [v[name] for v in values]
        columns[name] = column if convert is None else [None if x is None else convert(x) for x in column]
    return pa.Table.from_pydict(columns, schema=STEPS_SCHEMA)


def _frame_table(keyed_steps: list[tuple[str, str, Step]]) -> pa.Table:
    """The frames-table rows of the frames of (episode_id, revision, step) triples, column by column."""
    keys: list[tuple[str, str, int]] = []
    values: list[dict[str, Any]] = []
    for episode_id, revision, step in keyed_steps:
        frames = step.frames
        if frames:
            key = (episode_id, revision, step.index)
            keys.extend([key] * len(frames))
            values.extend(f.__dict__ for f in frames)
    columns: dict[str, list[Any]] = {"episode_id": [k[0] for k in keys], "revision": [k[1] for k in keys],
                                     "index": [k[2] for k in keys]}
    for name in FRAMES_SCHEMA.names[3:]:
        columns[name] = [v[name] for v in values]
    return pa.Table.from_pydict(columns, schema=FRAMES_SCHEMA)


@functools.lru_cache(maxsize=1)
def _step_converters() -> dict[str, Callable[[Any], Any] | None]:
    return {name: _column_converter(Step, name) for name in STEPS_SCHEMA.names[2:]}


def _column_converter(model: type[Any], name: str) -> Callable[[Any], Any] | None:
    """None when a field's values go into Arrow as they are; else the `model_to_row` conversion of that field."""
    from functools import partial
    from typing import get_args, get_origin

    from schemas.arrow import _field_annotation, _is_json, _to_row_value, _unwrap_optional

    annotation = _field_annotation(model, name)
    inner, _ = _unwrap_optional(annotation)
    if _is_json(inner):
        return partial(_to_row_value, annotation)
    base = get_args(inner)[0] if get_origin(inner) is typing.Annotated else inner
    if get_origin(base) in (list, tuple):
        item = get_args(base)[0] if get_args(base) else Any
        simple = item in (int, float, str, bool, bytes)
    else:
        simple = base in (int, float, str, bool, bytes) or get_origin(base) is typing.Literal
    return None if simple else partial(_to_row_value, annotation)


def id_predicate(column: str, values: list[str]) -> str:
    """A Lance predicate `column IN (...)` over checked ids only (never user text)."""
    quoted = ", ".join(f"'{check_id(v)}'" for v in values)
    return f"{column} IN ({quoted})"


def _validate_label_value(field: str, value: Any) -> Any:
    """Check a relabel value against the Episode field's type (tags must be a list of str, etc.)."""
    probe = Episode.model_fields[field]
    from pydantic import TypeAdapter

    adapter = TypeAdapter(probe.annotation)
    validated = adapter.validate_python(value)
    return json.loads(adapter.dump_json(validated))


def vacuum(lake: Lake) -> dict[str, int]:
    """Delete step and frame rows that no retained version of the episodes table points to.

    They are left behind by interrupted writes; readers never see them. Returns rows deleted per table.
    """
    lake._require_writable()
    eps = lake._dataset(EPISODES, refresh=True)
    referenced: set[str] = set()
    if eps is not None:
        for v in eps.versions():
            old = lance.dataset(lake.table_uri(EPISODES), version=v["version"], storage_options=lake.storage_options)
            referenced.update(old.to_table(columns=["revision"]).column("revision").to_pylist())
    deleted = {}
    for name in (STEPS, FRAMES):
        ds = lake._dataset(name, refresh=True)
        if ds is None:
            deleted[name] = 0
            continue
        revs = set(pc.unique(ds.to_table(columns=["revision"]).column("revision")).to_pylist())
        orphans = sorted(revs - referenced)
        if orphans:
            before = ds.count_rows()
            ds.delete(id_predicate("revision", orphans))
            ds = lake._dataset(name, refresh=True)
            deleted[name] = before - ds.count_rows()
        else:
            deleted[name] = 0
    return deleted
