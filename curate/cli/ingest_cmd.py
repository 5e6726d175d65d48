"""`curate ingest`: read sources through their connectors into a lake, idempotently, in parallel, resumably.

    curate ingest gs://gresearch/robotics/bridge/0.1.0 --lake ./lake --workers 8
    curate ingest ./rlds_root --split train --limit 100 --report ingest.json
    curate ingest ./alfred/json_2.1.0 --format alfred --strict
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from curate.cli.common import JsonOption, LakeOption, console, print_json
from curate.cli.main import app
from curate.errors import ConfigError, IngestError
from curate.ingest import EXIT_CODES, IngestProgress, IngestReport, ingest
from curate.lake import default_lake_uri

_EXIT_HELP = "\n\n".join(f"{code}: {text}" for code, text in EXIT_CODES.items())


def _print_report(report: IngestReport) -> None:
    table = Table(title=f"ingest into {report.lake} (version {report.version})")
    for col in ("dataset", "episodes", "steps", "unchanged", "replaced", "rejected"):
        table.add_column(col, justify="left" if col == "dataset" else "right")
    for name, c in sorted(report.datasets.items()):
        table.add_row(name, str(c.episodes), str(c.steps), str(c.unchanged), str(c.replaced), str(c.rejected))
    console.print(table)
    for r in report.rejections[:50]:
        console.print(f"[red]rejected[/] {r.file} record {r.record}: {r.reason}")
    if len(report.rejections) > 50:
        console.print(f"... and {len(report.rejections) - 50} more (see --report)")
    for w in report.warnings:
        console.print(f"[yellow]warning[/] {w}")
    rate = report.steps / report.seconds if report.seconds else 0.0
    console.print(f"{report.episodes} episodes, {report.steps} steps in {report.seconds:.1f}s ({rate:.0f} steps/s); "
                  f"{report.unchanged} unchanged, {report.rejected} rejected")


def _options(pairs: list[str]) -> dict[str, object]:
    """`KEY=VALUE` connector options; a VALUE that parses as JSON is used as such, else as a string."""
    extra: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--option expects KEY=VALUE, got {pair!r}")
        try:
            extra[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            extra[key.strip()] = value
    return extra


@app.command(epilog=f"Exit codes:\n\n{_EXIT_HELP}")
def ingest_cmd(
    sources: Annotated[list[str], typer.Argument(help="Source paths or URIs (local, s3://, gs://).",
                                                 show_default=False)],
    lake: LakeOption = None,
    format: Annotated[str, typer.Option("--format", "-f", help="Connector name, or auto to detect by probing.")] = (
        "auto"),
    dataset: Annotated[str | None, typer.Option(help="Override the dataset name.", show_default=False)] = None,
    split: Annotated[list[str] | None, typer.Option("--split", help="Only this split (repeatable).",
                                                    show_default=False)] = None,
    workers: Annotated[int, typer.Option("--workers", "-j", min=1, help="Parallel worker processes.")] = 1,
    limit: Annotated[int | None, typer.Option(min=1, help="Stop after N source episodes.", show_default=False)] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Stop at the first bad episode; commit nothing.")] = False,
    report_file: Annotated[Path | None, typer.Option("--report", help="Write the report as JSON to this file.",
                                                     show_default=False)] = None,
    json_out: JsonOption = False,
    option: Annotated[list[str] | None, typer.Option(
        "--option", "-o", help="Connector option KEY=VALUE (repeatable; VALUE parsed as JSON when it is JSON), "
                               "e.g. -o mapping=robot.yaml for ROS 2 bags.", show_default=False)] = None,
    engine: Annotated[str, typer.Option("--engine", help="local (processes on this machine) or ray (Ray Data: "
                                        "one task per unit, one atomic commit).")] = "local",
    address: Annotated[str | None, typer.Option("--address", help="Ray cluster to join with --engine ray (e.g. "
                                                "auto); default: start a local Ray.", show_default=False)] = None,
) -> None:
    """Ingest SOURCE... into the lake: idempotent (unchanged episodes are skipped, changed ones replaced),
    parallel across shards/files, resumable after a crash. Bad episodes are reported and skipped (--strict:
    the first one stops the run and nothing of it is committed)."""
    uri = lake or default_lake_uri()
    if workers < 1:
        raise ConfigError("--workers must be at least 1")
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=console,
                  disable=json_out) as bar:
        task = bar.add_task("ingest (units)", total=None, rate="")

        def progress(p: IngestProgress) -> None:
            bar.update(task, completed=p.units_done, total=p.units_total,
                       rate=f"{p.episodes} ep, {p.episodes_per_s:.1f} ep/s, {p.steps_per_s:.0f} steps/s")

        try:
            if engine == "ray":
                from curate.distributed import ingest_ray

                if limit is not None:
                    raise ConfigError("--limit needs the local engine (units run in parallel on Ray)")
                report = ingest_ray(sources, lake=uri, format=format, dataset=dataset, splits=split or (),
                                    strict=strict, progress=progress, extra=_options(option or []), address=address)
            elif engine == "local":
                report = ingest(sources, lake=uri, format=format, dataset=dataset, splits=split or (),
                                workers=workers, limit=limit, strict=strict, progress=progress,
                                extra=_options(option or []))
            else:
                raise ConfigError(f"--engine must be local or ray, got {engine!r}")
        except IngestError as exc:
            failed: IngestReport | None = getattr(exc, "report", None)
            if failed is not None and report_file is not None:
                report_file.write_text(json.dumps(failed.to_dict(), indent=2, default=str))
            raise
    if report_file is not None:
        report_file.write_text(json.dumps(report.to_dict(), indent=2, default=str))
    if json_out:
        print_json(report.to_dict())
    else:
        _print_report(report)
    if report.exit_code:
        raise typer.Exit(report.exit_code)


ingest_cmd.__name__ = "ingest"
app.registered_commands[-1].name = "ingest"
