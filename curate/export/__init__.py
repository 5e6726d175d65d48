"""Exports of a resolved mixture: LeRobot v3.0, RLDS (TFDS directory) and Parquet; all atomic.

    from curate.export import export
    result = export(manifest, format="parquet", out="out/mix", progress=lambda stage, done, total: ...)

Every export also writes manifest.json (spec, lake version, counts, sha256 of each file), normalization.json
(per-dataset action/state mean, std, min, max, q01..q99 per named dimension), mixture_weights.json and
mixture_weights.py (an OXE_NAMED_MIXTURES-style list of (dataset, weight)).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from curate.export.common import ExportError, ExportResult, Overwrite, Progress, Repeats, verify_checksums
from curate.lake import Lake
from schemas.mixture import Manifest

ExportFormat = Literal["lerobot", "rlds", "parquet"]
FORMATS: tuple[str, ...] = ("lerobot", "rlds", "parquet")


def export(manifest: Manifest, *, format: ExportFormat, out: str | Path, lake: Lake | str | None = None,
           overwrite: Overwrite = "refuse", repeats: Repeats = "materialize", progress: Progress | None = None,
           **options: Any) -> ExportResult:
    """Write `manifest`'s episodes to `out` in `format`, reading the lake at the manifest's version and labels.

    Args:
        lake: the lake (or its URI); default the manifest's `lake_uri`.
        overwrite: "refuse" (default) or "replace" an existing export.
        repeats: "materialize" writes each episode `repeats` times (a plain loader sees the mixture);
            "once" writes each selected episode once and relies on the weights.
        options: format options (lerobot: `cameras="video"|"image"`).

    Raises:
        ExportError: the target exists, or the data cannot be written in this format.
    """
    from curate.mixtures import lake_for

    source = lake_for(manifest, lake=lake.uri if isinstance(lake, Lake) else lake)
    if format == "parquet":
        from curate.export.parquet import export_parquet

        return export_parquet(manifest, source, out, overwrite=overwrite, repeats=repeats, progress=progress,
                              **options)
    if format == "lerobot":
        from curate.export.lerobot import export_lerobot

        return export_lerobot(manifest, source, out, overwrite=overwrite, repeats=repeats, progress=progress,
                              **options)
    if format == "rlds":
        from curate.export.rlds import export_rlds

        return export_rlds(manifest, source, out, overwrite=overwrite, repeats=repeats, progress=progress,
                           **options)
    raise ExportError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")


__all__ = ["FORMATS", "ExportError", "ExportFormat", "ExportResult", "export", "verify_checksums"]
