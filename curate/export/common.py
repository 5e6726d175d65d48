"""What every export format shares: the atomic output directory, the episode stream, manifest.json with
checksums, per-dataset normalisation statistics and the mixture weights files.

An export is written into a hidden sibling directory (`.<name>.partial-<random>`) and renamed onto the
target only when complete, so an interrupted export leaves nothing at the target; replacing an existing
export needs `overwrite="replace"`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np

from curate.errors import ConfigError
from curate.export.columns import ExportEpisode, iter_columns
from curate.lake import Lake
from schemas.mixture import Manifest, ManifestEpisode

Progress = Callable[[str, int, int], None]
"""progress(stage, done, total): stages are `episodes` (done/total episodes written) and `finalize`."""
Overwrite = Literal["refuse", "replace"]
Repeats = Literal["materialize", "once"]
EXPORT_MANIFEST = "manifest.json"
RESERVOIR = 100_000
"""Rows kept per dataset for quantiles: exact below this many steps, a seeded uniform sample above."""


class ExportError(ConfigError):
    """An export that cannot be written (target exists, unsupported data); nothing is left at the target."""


@dataclass
class ExportResult:
    """What an export wrote."""

    out: str
    format: str
    episodes: int = 0
    steps: int = 0
    frames: int = 0
    bytes: int = 0
    frames_reencoded: int = 0
    seconds: float = 0.0
    files: dict[str, str] = field(default_factory=dict)
    """relative path -> sha256."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Episodes left out by reason (e.g. LeRobot cannot hold an episode with no steps)."""


# ------------------------------------------------------------------------------------------------- atomic dir
@contextmanager
def atomic_dir(out: str | Path, *, overwrite: Overwrite = "refuse") -> Iterator[Path]:
    """Yield a fresh temporary directory next to `out`; on success move it onto `out`.

    Raises:
        ExportError: `out` exists and `overwrite` is "refuse".
    """
    out = Path(out).absolute()
    if out.exists() and overwrite != "replace":
        raise ExportError(f"{out} already exists; pass --overwrite to replace it, or choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        if out.exists():
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ------------------------------------------------------------------------------------------------- episodes
@dataclass(frozen=True)
class Item:
    """One episode to write: its manifest row, its columns (current labels, frame bytes) and which copy this is."""

    entry: ManifestEpisode
    episode: ExportEpisode
    copy: int
    copies: int


def plan(manifest: Manifest, *, repeats: Repeats = "materialize") -> list[tuple[ManifestEpisode, int, int]]:
    """(entry, copy, copies) in write order: selected episodes in manifest order, each copy after the last."""
    out = []
    for entry in manifest.selected():
        copies = entry.repeats if repeats == "materialize" else 1
        for c in range(copies):
            out.append((entry, c, copies))
    return out


def iter_items(manifest: Manifest, lake: Lake, *, repeats: Repeats = "materialize",
               datasets: set[str] | None = None) -> Iterator[Item]:
    """Read each selected episode once as Arrow columns (bounded batches, manifest order); yield it once per copy."""
    for entry, episode in iter_columns(manifest, lake, datasets=datasets):
        copies = entry.repeats if repeats == "materialize" else 1
        for c in range(copies):
            yield Item(entry=entry, episode=episode, copy=c, copies=copies)


# ------------------------------------------------------------------------------------------------- statistics
class VectorStats:
    """Streaming per-dimension statistics: count, mean, std, min, max and quantiles from a bounded reservoir."""

    def __init__(self, *, seed: int = 0, reservoir: int = RESERVOIR) -> None:
        self.count = 0
        self._sum: np.ndarray | None = None
        self._sumsq: np.ndarray | None = None
        self._min: np.ndarray | None = None
        self._max: np.ndarray | None = None
        self._rows = np.empty((0, 0))
        self._kept = 0
        self._cap = reservoir
        self._rng = np.random.default_rng(seed)

    def add(self, values: np.ndarray) -> None:
        """Add a (T, D) block of rows (reservoir sampling, algorithm R, seeded and vectorised)."""
        if values.size == 0:
            return
        v = np.asarray(values, dtype=np.float64)
        if v.ndim == 1:
            v = v[:, None]
        if self._sum is None:
            d = v.shape[1]
            self._sum, self._sumsq = np.zeros(d), np.zeros(d)
            self._min, self._max = np.full(d, np.inf), np.full(d, -np.inf)
            self._rows = np.empty((self._cap, d))
        if v.shape[1] != self._sum.shape[0]:
            raise ExportError(f"vector width changed from {self._sum.shape[0]} to {v.shape[1]} within one dataset")
        self._sum += v.sum(0)
        self._sumsq += (v * v).sum(0)
        self._min = np.minimum(self._min, v.min(0))
        self._max = np.maximum(self._max, v.max(0))
        fill = min(len(v), self._cap - self._kept)
        self._rows[self._kept:self._kept + fill] = v[:fill]
        self._kept += fill
        self.count += fill
        rest = v[fill:]
        if len(rest):
            # row k (1-based count after adding it) replaces a uniform slot j < count when j < cap
            j = self._rng.integers(0, self.count + np.arange(1, len(rest) + 1))
            hit = np.flatnonzero(j < self._cap)
            # the same slot drawn twice: the later row wins, as in the sequential algorithm
            slots, last = np.unique(j[hit][::-1], return_index=True)
            self._rows[slots] = rest[hit[::-1][last]]
            self.count += len(rest)

    def result(self, names: list[str] | None = None) -> dict[str, Any]:
        """{names, count, mean, std, min, max, q01, q10, q50, q90, q99} as lists (one value per dimension)."""
        if self._sum is None:
            return {"names": names or [], "count": 0}
        mean = self._sum / self.count
        var = np.maximum(self._sumsq / self.count - mean * mean, 0.0)
        rows = self._rows[:self._kept]
        out: dict[str, Any] = {"names": names or [f"dim_{i}" for i in range(len(mean))], "count": self.count,
                               "mean": mean.tolist(), "std": np.sqrt(var).tolist(), "min": self._min.tolist(),
                               "max": self._max.tolist()}
        for q in (1, 10, 50, 90, 99):
            out[f"q{q:02d}"] = np.quantile(rows, q / 100, axis=0).tolist()
        return out


class NormStats:
    """Per-dataset action and state statistics, written with every export as normalization.json."""

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed
        self._data: dict[str, dict[str, VectorStats]] = {}
        self._names: dict[str, dict[str, list[str]]] = {}

    def add(self, episode: ExportEpisode) -> None:
        """Add one episode's actions and states (states only when every step has one)."""
        per = self._data.setdefault(episode.dataset, {})
        names = self._names.setdefault(episode.dataset, {})
        actions = episode.vectors("action")
        if actions is None:
            raise ExportError(f"episode {episode.episode_id}: its steps' actions differ in length")
        if actions.size:
            per.setdefault("action", VectorStats(seed=self.seed)).add(actions)
            names.setdefault("action", list(episode.row["action_space"]["names"] or []))
        states = episode.vectors("state")
        if states is not None and episode.n_steps:
            per.setdefault("state", VectorStats(seed=self.seed)).add(states)
            space = episode.row["state_space"]
            names.setdefault("state", list(space["names"] or []) if space else [])

    def result(self) -> dict[str, Any]:
        return {ds: {key: stats.result(self._names[ds].get(key)) for key, stats in sorted(per.items())}
                for ds, per in sorted(self._data.items())}


# ------------------------------------------------------------------------------------------------- files
def sha256_file(path: Path) -> str:
    return _sha256_and_close(Path(path).open("rb"))


class Checksums:
    """sha256 of output files, each hashed in a background thread as soon as it is complete (hashlib releases
    the GIL), so hashing overlaps with writing the next file instead of re-reading everything at the end."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="export-sha256")
        self._pending: dict[Path, Future[str]] = {}

    def add(self, path: Path) -> None:
        """Hash `path`, which must not change any more (it is opened now, so it may be renamed meanwhile)."""
        fh = Path(path).open("rb")  # noqa: SIM115 - the hashing thread closes it
        self._pending[Path(path)] = self._pool.submit(_sha256_and_close, fh)

    def renamed(self, old: Path, new: Path) -> None:
        """`old` (added before) is now called `new`."""
        if Path(old) in self._pending:
            self._pending[Path(new)] = self._pending.pop(Path(old))

    def digest(self, path: Path) -> str:
        """The sha256 of `path`: the background result if it was added, else hashed now."""
        future = self._pending.pop(Path(path), None)
        return future.result() if future is not None else sha256_file(path)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Checksums:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _sha256_and_close(fh: IO[bytes]) -> str:
    with fh:
        h = hashlib.sha256()
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
        return h.hexdigest()


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False, default=str) + "\n")


def mixture_weights(manifest: Manifest) -> list[tuple[str, float]]:
    """(dataset, weight) pairs, weights = each dataset's share of the exported mixture (sum 1), by dataset."""
    return [(ds, round(w, 9)) for ds, w in manifest.dataset_weights(basis="repeats").items()]


def write_mixture_files(root: Path, manifest: Manifest) -> None:
    """mixture_weights.json and mixture_weights.py (an OXE_NAMED_MIXTURES-style entry) for training code.

    The weights are shares already, so a trainer should use them with `balance_weights=False`.
    """
    pairs = mixture_weights(manifest)
    write_json(root / "mixture_weights.json", {"name": manifest.name, "balance_weights": False, "unit": manifest.unit,
                                               "weights": [{"dataset": d, "weight": w} for d, w in pairs]})
    lines = ['"""Mixture weights exported by curate; use with balance_weights=False (weights are shares)."""', "",
             "OXE_NAMED_MIXTURES = {", f"    {manifest.name!r}: ["]
    lines += [f"        ({d!r}, {w!r})," for d, w in pairs]
    lines += ["    ],", "}", ""]
    (root / "mixture_weights.py").write_text("\n".join(lines))


def finalize(root: Path, manifest: Manifest, result: ExportResult, *, norm: NormStats,
             extra: dict[str, Any] | None = None, checksums: Checksums | None = None) -> None:
    """Write normalization.json, the mixture weights, the full mixture manifest and manifest.json (checksums).

    Args:
        checksums: digests of data files already hashed while the export wrote them; the rest are hashed here.
    """
    write_json(root / "normalization.json", norm.result())
    write_mixture_files(root, manifest)
    (root / "mixture_manifest.json").write_text(manifest.to_json())
    files: dict[str, str] = {}
    total = 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        files[rel] = checksums.digest(path) if checksums is not None else sha256_file(path)
        total += path.stat().st_size
    result.files = files
    result.bytes = total
    write_json(root / EXPORT_MANIFEST, {
        "format": result.format,
        "exporter": "curate",
        "mixture": manifest.name,
        "spec": manifest.spec.model_dump(mode="json"),
        "spec_hash": manifest.spec_hash,
        "lake_uri": manifest.lake_uri,
        "lake_version": manifest.lake_version,
        "labels_version": manifest.labels_version,
        "counts": {"episodes": result.episodes, "steps": result.steps, "frames": result.frames,
                   "frames_reencoded": result.frames_reencoded, "bytes": total, "skipped": result.skipped},
        "datasets": dict(mixture_weights(manifest)),
        **(extra or {}),
        "checksums": {"algorithm": "sha256", "files": files},
    })


def verify_checksums(root: str | Path) -> list[str]:
    """Files whose sha256 no longer matches manifest.json (empty = intact)."""
    root = Path(root)
    info = json.loads((root / EXPORT_MANIFEST).read_text())
    bad = []
    for rel, digest in info["checksums"]["files"].items():
        p = root / rel
        if not p.exists() or sha256_file(p) != digest:
            bad.append(rel)
    return bad


def safe_name(name: str) -> str:
    """A dataset name usable as a directory name."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return cleaned.strip(".") or "dataset"


def fsync_dir(path: Path) -> None:
    """Best effort: flush a directory entry (rename durability) where the OS allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
