"""`curate mix` and `curate export`: resolve a mixture spec into a manifest, write it for a trainer.

    curate mix examples/mixtures/demo_balanced.yaml --lake ./lake --out mix.json
    curate mix spec.yaml --dry-run --json               # per-group shares only, nothing written
    curate export mix.json --format lerobot --out out/lerobot
    curate export mix.json --format parquet --out out/pq --overwrite
    curate export mix.json --format rlds --out out/rlds --repeats once
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from curate.cli.common import JsonOption, LakeOption, console, open_lake, print_json
from curate.cli.main import app
from curate.errors import ConfigError
from curate.export import FORMATS, export
from curate.mixtures import load_manifest, load_spec, resolve, save_manifest
from schemas.mixture import Manifest


def _bar(disable: bool) -> tuple[Progress, Callable[[str, int, int], None]]:
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=console, disable=disable)
    tasks: dict[str, int] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    return bar, progress


def _print_groups(manifest: Manifest) -> None:
    table = Table("group", "episodes", f"{manifest.unit} available", "requested", "achieved", "max repeats", "note",
                  title=f"mixture {manifest.name!r}: {manifest.selected_episodes:,} episodes selected, "
                        f"{manifest.total_units:,.4g} {manifest.unit} (lake version {manifest.lake_version})")
    for g in manifest.groups:
        table.add_row(g.group, f"{g.episodes:,}", f"{g.units_available:,.4g}", f"{g.requested_share:.2%}",
                      f"{g.achieved_share:.2%}", str(g.max_repeats), ("capped; " if g.capped else "") + (g.note or ""))
    console.print(table)
    console.print(f"effective groups: requested {manifest.effective_groups_requested:.2f}, achieved "
                  f"{manifest.effective_groups_achieved:.2f}; excluded: {manifest.excluded or 'none'}")
    for warning in manifest.warnings:
        console.print(f"[yellow]warning:[/] {warning}")


@app.command()
def mix(
    spec: Annotated[str, typer.Argument(help="Mixture spec file (YAML or JSON).")],
    lake: LakeOption = None,
    out: Annotated[str | None, typer.Option("--out", "-o", help="Where to write the manifest (JSON).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Resolve and print the shares; write nothing.")] = False,
    seed: Annotated[int | None, typer.Option(help="Override the spec's seed.")] = None,
    json_out: JsonOption = False,
) -> None:
    """Resolve a mixture spec on the lake into a manifest: episodes, weights, repeats, shares per group."""
    parsed = load_spec(spec)
    if seed is not None:
        parsed = parsed.model_copy(update={"seed": seed})
    if out is None and not dry_run:
        raise ConfigError("pass --out MANIFEST.json to write the manifest, or --dry-run to only print the shares")
    manifest = resolve(parsed, open_lake(lake, read_only=True))
    if out and not dry_run:
        save_manifest(manifest, out)
    if json_out:
        print_json({**manifest.summary(), "manifest": None if dry_run else out})
        return
    _print_groups(manifest)
    if out and not dry_run:
        console.print(f"[bold green]manifest written[/] to {out} (spec hash {manifest.spec_hash[:12]}); next: "
                      f"`curate export {out} --format lerobot --out OUT`")


@app.command("export")
def export_cmd(
    manifest: Annotated[str, typer.Argument(help="A manifest written by `curate mix`.")],
    format: Annotated[str, typer.Option("--format", "-f", help=f"One of: {', '.join(FORMATS)}.")] = "parquet",
    out: Annotated[str, typer.Option("--out", "-o", help="Output directory (created atomically).")] = ...,  # type: ignore[assignment]
    lake: LakeOption = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing export at --out.")] = False,
    repeats: Annotated[str, typer.Option(help="materialize: write each episode `repeats` times; once: write it "
                                              "once and rely on the weights.")] = "materialize",
    cameras: Annotated[str, typer.Option(help="lerobot only: video (H.264, or passed through) or image "
                                              "(JPEG/PNG bytes in parquet).")] = "video",
    json_out: JsonOption = False,
) -> None:
    """Write a mixture manifest as LeRobot v3.0, RLDS (TFDS directory) or Parquet, with manifest.json."""
    if format not in FORMATS:
        raise ConfigError(f"unknown --format {format!r}; choose one of {', '.join(FORMATS)}")
    if repeats not in ("materialize", "once"):
        raise ConfigError(f"--repeats must be 'materialize' or 'once', got {repeats!r}")
    parsed = load_manifest(manifest)
    options = {"cameras": cameras} if format == "lerobot" else {}
    bar, progress = _bar(json_out)
    with bar:
        result = export(parsed, format=format, out=out, lake=lake, overwrite="replace" if overwrite else "refuse",  # type: ignore[arg-type]
                        repeats=repeats, progress=progress, **options)  # type: ignore[arg-type]
    summary = {k: v for k, v in result.__dict__.items() if k != "files"} | {"files": len(result.files)}
    if json_out:
        print_json(summary)
        return
    rate = result.frames / result.seconds if result.seconds else 0.0
    console.print(f"[bold green]exported[/] {result.episodes:,} episodes, {result.steps:,} steps, "
                  f"{result.frames:,} frames ({result.bytes / 1e6:.1f} MB, {rate:,.0f} frames/s) as {format} "
                  f"to {result.out}")
