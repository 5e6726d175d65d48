"""RLDS export: one TFDS dataset directory per source dataset, `<out>/<dataset>/1.0.0/`.

Written with the project's TFDS-compatible writer (`connectors.rlds.writer`): dataset_info.json,
features.json and TFRecord shards with masked CRC32C, in the standard RLDS step layout
(`steps/observation/<camera>`, `steps/action`, `steps/language_instruction`, ...), readable by
`tfds.builder_from_directory(out/<dataset>/1.0.0)` and by `curate ingest`. One dataset per source dataset
because an RLDS dataset has one feature spec (Octo/OpenVLA load a mixture as a list of datasets: see
mixture_weights.py). JPEG/PNG frames pass through byte for byte; video references are decoded to JPEG.
The current instruction (after relabels) is what `steps/language_instruction` holds.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

from curate.export.common import (
    ExportError,
    ExportResult,
    NormStats,
    Overwrite,
    Progress,
    Repeats,
    atomic_dir,
    finalize,
    iter_items,
    plan,
    safe_name,
)
from curate.lake import Lake
from schemas import Episode, Frame
from schemas.mixture import Manifest

VERSION = "1.0.0"


def _decoded(episode: Episode) -> tuple[Episode, int]:
    """The episode with video-reference frames replaced by JPEG bytes (RLDS images are encoded images)."""
    if not any(f.format == "video" for s in episode.steps for f in s.frames):
        return episode, 0
    from curate.media import decode_frame

    count = 0
    steps = []
    for step in episode.steps:
        frames = []
        for f in step.frames:
            if f.format == "video":
                buf = io.BytesIO()
                decode_frame(f).save(buf, format="JPEG", quality=95)
                frames.append(Frame(camera=f.camera, format="jpeg", data=buf.getvalue()))
                count += 1
            else:
                frames.append(Frame(camera=f.camera, format=f.format, data=f.read_bytes()))
        steps.append(step.model_copy(update={"frames": frames}))
    return episode.model_copy(update={"steps": steps}), count


def export_rlds(manifest: Manifest, lake: Lake, out: str | Path, *, overwrite: Overwrite = "refuse",
                repeats: Repeats = "materialize", progress: Progress | None = None,
                episodes_per_shard: int = 100) -> ExportResult:
    """Write the mixture as RLDS/TFDS datasets, one per source dataset, under `out` (atomically)."""
    from connectors.rlds.writer import RLDSWriteError, write_episodes

    started = time.perf_counter()
    todo = plan(manifest, repeats=repeats)
    result = ExportResult(out=str(Path(out).absolute()), format="rlds")
    norm = NormStats(seed=manifest.spec.seed)
    datasets = sorted({e.dataset for e, _, _ in todo})
    written: dict[str, dict[str, object]] = {}
    with atomic_dir(out, overwrite=overwrite) as root:
        done = 0
        for ds in datasets:
            counts = {"episodes": 0, "steps": 0}

            def stream(ds: str = ds, counts: dict[str, int] = counts) -> Iterator[Episode]:
                nonlocal done
                last = None
                for item in iter_items(manifest, lake, repeats=repeats, datasets={ds}):
                    if item.episode.n_steps == 0:  # an RLDS episode is its steps: nothing to write
                        result.skipped["empty episode"] = result.skipped.get("empty episode", 0) + 1
                        done += 1
                        continue
                    if item.episode.episode_id != last:
                        norm.add(item.episode)
                        episode, reenc = _decoded(item.episode)
                        result.frames_reencoded += reenc
                        last = item.episode.episode_id
                    meta = {**episode.metadata, "mixture": {"name": manifest.name, "group": item.entry.group,
                                                            "weight": manifest.copy_weight(item.entry,
                                                                                           copies=item.copies),
                                                            "copy": item.copy, "repeats": item.entry.repeats}}
                    counts["episodes"] += 1
                    counts["steps"] += episode.n_steps
                    result.frames += sum(len(s.frames) for s in episode.steps)
                    done += 1
                    if progress:
                        progress("episodes", done, len(todo))
                    yield episode.model_copy(update={"metadata": meta})

            target = root / safe_name(ds) / VERSION
            try:
                write_episodes(stream(), str(target), name=safe_name(ds), version=VERSION,
                               split_of=lambda _ep: "train", episodes_per_shard=episodes_per_shard,
                               description=f"{ds}: part of mixture {manifest.name} exported by curate")
            except RLDSWriteError as exc:
                raise ExportError(f"dataset {ds!r} cannot be written as RLDS: {exc}") from None
            result.episodes += counts["episodes"]
            result.steps += counts["steps"]
            written[ds] = {"path": f"{safe_name(ds)}/{VERSION}", **counts}
        if progress:
            progress("finalize", len(todo), len(todo))
        finalize(root, manifest, result, norm=norm, extra={"layout": {"datasets": written, "split": "train"}})
    result.seconds = round(time.perf_counter() - started, 3)
    return result
