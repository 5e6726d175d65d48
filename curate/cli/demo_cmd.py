"""`curate demo`: build the demo world into a lake through the real formats, then open the UI."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from curate.cli.common import JsonOption, LakeOption, console, print_json
from curate.cli.main import app
from curate.demo import build_demo
from curate.demo.build import DEFAULT_EPISODES, DEFAULT_SEED, report_dict
from curate.lake import default_lake_uri


@app.command()
def demo(
    lake: LakeOption = None,
    episodes: Annotated[int, typer.Option("--episodes", "-n", min=4, help="Training episodes to generate.")] = (
        DEFAULT_EPISODES),
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same world.")] = DEFAULT_SEED,
    via: Annotated[str, typer.Option(help="formats: write RLDS/LeRobot/HDF5/rosbag/ALFRED files and ingest them; "
                                          "schema: write episodes directly.")] = "formats",
    sources: Annotated[str | None, typer.Option(help="Where to write the source files (default <lake>-sources).",
                                                show_default=False)] = None,
    no_embed: Annotated[bool, typer.Option("--no-embed", help="Skip CLIP embedding, clusters, tags and the "
                                                               "shift audit (much faster).")] = False,
    no_ui: Annotated[bool, typer.Option("--no-ui", help="Build the lake only; do not open the UI.")] = False,
    host: Annotated[str, typer.Option(help="UI address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="UI port.")] = 8501,
    json_out: JsonOption = False,
) -> None:
    """Generate a realistic tabletop world (several robots, phrasings, clutter, a long tail of rare objects,
    near-duplicates, failures, unlabelled episodes and a deployment set), write it in real source formats,
    ingest it into a lake, and open the UI."""
    if via not in ("formats", "schema"):
        raise typer.BadParameter("choose formats or schema", param_hint="--via")
    uri = lake or default_lake_uri()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, disable=json_out) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        report = build_demo(uri, episodes=episodes, seed=seed, via=via, sources_dir=sources,  # type: ignore[arg-type]
                            embed=not no_embed, progress=progress)
    if json_out:
        print_json(report_dict(report))
    else:
        console.print(f"[bold green]demo lake ready[/] at {report.lake}: {report.episodes} episodes, "
                      f"{report.steps} steps in {report.seconds:.1f}s")
        for dataset, count in report.datasets.items():
            where = report.sources.get(dataset, "")
            console.print(f"  {dataset:<18} {count:>5} episodes  {where}")
        if "embed" in report.stages:
            console.print(f"CLIP model: {report.stages['embed']['model']}")
        console.print(f"next: `curate stats --lake {report.lake}`, `curate ls --lake {report.lake}`, "
                      f"`curate ui --lake {report.lake}`")
    if not no_ui:
        from curate.cli.ui_cmd import launch

        launch(report.lake, host=host, port=port)
