"""`curate demo`: build the demo world into a lake (and, once the UI exists, open it)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from curate.cli.common import JsonOption, LakeOption, console, print_json
from curate.cli.main import app
from curate.demo import build_demo
from curate.demo.build import DEFAULT_EPISODES, DEFAULT_SEED
from curate.lake import default_lake_uri


@app.command()
def demo(
    lake: LakeOption = None,
    episodes: Annotated[int, typer.Option("--episodes", "-n", min=4, help="Training episodes to generate.")] = (
        DEFAULT_EPISODES),
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same world.")] = DEFAULT_SEED,
    no_ui: Annotated[bool, typer.Option("--no-ui", help="Build the lake only; do not open the UI.")] = False,
    json_out: JsonOption = False,
) -> None:
    """Generate a realistic tabletop world (several robots, phrasings, clutter, a long tail of rare objects,
    near-duplicates, failures, unlabelled episodes and a deployment set) and build a lake from it."""
    uri = lake or default_lake_uri()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, disable=json_out) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        report = build_demo(uri, episodes=episodes, seed=seed, progress=progress)
    if json_out:
        print_json(report.__dict__)
    else:
        console.print(f"[bold green]demo lake ready[/] at {report.lake}: {report.episodes} episodes, "
                      f"{report.steps} steps in {report.seconds:.1f}s; datasets: {report.datasets}")
        console.print(f"next: `curate stats --lake {report.lake}` or `curate ls --lake {report.lake}`")
    if not no_ui:
        console.print("The UI is not part of this build yet; use `curate ls` / `curate show` to browse.")
