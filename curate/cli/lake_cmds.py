"""Commands that read and check the lake: stats, ls, show, doctor, vacuum, versions, label, history."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from curate.cli.common import JsonOption, LakeOption, WhereOption, console, open_lake, print_json
from curate.cli.main import app
from curate.doctor import check_lake
from curate.lake import LIST_COLUMNS, vacuum


@app.command()
def stats(lake: LakeOption = None, json_out: JsonOption = False) -> None:
    """Totals of the lake: episodes, steps, hours, per dataset and embodiment."""
    result = open_lake(lake, read_only=True).stats()
    if json_out:
        print_json(result)
        return
    console.print(f"[bold]{result['lake']}[/] (version {result['version']}): {result['episodes']:,} episodes, "
                  f"{result['steps']:,} steps, {result['hours']:.2f} h")
    table = Table("dataset", "episodes", "steps", "hours")
    for row in result["per_dataset"]:
        table.add_row(row["dataset"], f"{row['episodes']:,}", f"{row['steps']:,}", f"{row['hours']:.2f}")
    console.print(table)


@app.command("ls")
def list_episodes(
    lake: LakeOption = None,
    where: WhereOption = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=0, help="Rows to print.")] = 20,
    offset: Annotated[int, typer.Option(min=0, help="Rows to skip.")] = 0,
    json_out: JsonOption = False,
) -> None:
    """List episodes matching a filter (current labels applied)."""
    total, page = open_lake(lake, read_only=True).page(where, limit=limit, offset=offset,
                                                      columns=[*LIST_COLUMNS, "success", "tags"])
    rows = page.select(list(LIST_COLUMNS)).to_dicts()
    if json_out:
        print_json({"total": total, "offset": offset, "episodes": rows})
        return
    table = Table("episode_id", "dataset", "steps", "instruction", title=f"{total:,} episodes match")
    for row in rows:
        table.add_row(row["episode_id"], row["dataset"], str(row["n_steps"]), row["instruction"] or "")
    console.print(table)


@app.command()
def show(
    episode_id: Annotated[str, typer.Argument(help="The episode id (see `curate ls`).")],
    lake: LakeOption = None,
    steps: Annotated[int, typer.Option(help="How many steps to print.")] = 5,
    json_out: JsonOption = False,
) -> None:
    """One episode: its metadata, current labels, first steps and label history."""
    the_lake = open_lake(lake, read_only=True)
    episode = the_lake.episode(episode_id, frames="lazy")
    history = the_lake.label_events(episode_id=episode_id)
    data = episode.model_dump(mode="json", exclude={"steps"})
    data["steps"] = [s.model_dump(mode="json", exclude={"frames"}) | {"frames": [
        {"camera": f.camera, "format": f.format, "video_uri": f.video_uri,
         "video_timestamp_s": f.video_timestamp_s} for f in s.frames]} for s in episode.steps[:steps]]
    data["labels"] = [e.model_dump(mode="json") for e in history]
    if json_out:
        print_json(data)
        return
    console.print_json(json.dumps({k: v for k, v in data.items() if k not in ("steps", "labels")}, default=str))
    console.print(f"[bold]first {min(steps, len(episode.steps))} of {episode.n_steps} steps[/]")
    for s in data["steps"]:
        console.print(f"  {s['index']:>5}  t={s['timestamp_s']:.3f}  action={s['action']}  "
                      f"frames={[f['camera'] for f in s['frames']]}")
    if history:
        console.print("[bold]label history[/]")
        for e in history:
            console.print(f"  {e.at:%Y-%m-%d %H:%M} {e.author}: {e.field} {e.previous!r} -> {e.value!r}")


@app.command()
def doctor(lake: LakeOption = None, json_out: JsonOption = False) -> None:
    """Check the lake's integrity and say what is wrong and what to do. Exit code 1 if anything is broken."""
    report = check_lake(open_lake(lake, read_only=True))
    if json_out:
        print_json(report.to_dict())
    else:
        for check in report.checks:
            console.print(f"[green]checked[/] {check}")
        for f in report.findings:
            colour = "red" if f.level == "error" else "yellow"
            console.print(f"[{colour}]{f.level}[/] {f.table}: {f.message}" + (f" -> {f.fix}" if f.fix else ""))
        console.print("[bold green]lake is healthy[/]" if report.ok else "[bold red]lake has problems[/]")
    if not report.ok:
        raise typer.Exit(1)


@app.command("vacuum")
def vacuum_cmd(lake: LakeOption = None, json_out: JsonOption = False) -> None:
    """Remove step/frame rows left behind by interrupted writes (no version of the lake refers to them)."""
    deleted = vacuum(open_lake(lake))
    if json_out:
        print_json({"deleted": deleted})
    else:
        console.print(f"deleted {deleted}")


@app.command()
def versions(lake: LakeOption = None, json_out: JsonOption = False) -> None:
    """Versions of the lake; read an old one with `Lake(uri, version=N)`."""
    result = open_lake(lake, read_only=True).versions()
    if json_out:
        print_json({"versions": result})
        return
    for v in result:
        console.print(f"{v['version']:>6}  {v['timestamp']}")


@app.command()
def label(
    episode_ids: Annotated[list[str] | None, typer.Argument(help="Episode ids to relabel.", show_default=False)] = None,
    field: Annotated[str, typer.Option("--field", "-f", help="instruction, success, tags, notes, segments, ...")] = "",
    value: Annotated[str, typer.Option("--value", "-v", help="New value as JSON (text may be given bare).")] = "",
    where: WhereOption = None,
    author: Annotated[str, typer.Option(help="Who makes the change.", envvar="USER")] = "cli",
    note: Annotated[str | None, typer.Option(help="Why.")] = None,
    lake: LakeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Relabel episodes (by id, or every episode matching --where): each change is a LabelEvent."""
    if not field:
        raise typer.BadParameter("give --field, e.g. --field instruction", param_hint="--field")
    the_lake = open_lake(lake)
    ids = list(episode_ids or [])
    if where:
        ids += the_lake.episodes(where, columns=["episode_id"])["episode_id"].to_list()
    if not ids:
        raise typer.BadParameter("give episode ids or a --where filter that matches some", param_hint="EPISODE_IDS")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    if field in ("instruction", "notes", "scene", "task_type", "split") and not isinstance(parsed, str | None):
        parsed = value
    events = the_lake.relabel(ids, field, parsed, author=author, note=note)
    if json_out:
        print_json({"events": [e.model_dump(mode="json") for e in events]})
    else:
        console.print(f"relabelled {field} on {len(events)} episodes")


@app.command()
def undo(
    event_id: Annotated[str, typer.Argument(help="The label event to undo (see `curate history`).")],
    author: Annotated[str, typer.Option(help="Who undoes it.", envvar="USER")] = "cli",
    lake: LakeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Undo a label event by appending an event that restores the previous value."""
    event = open_lake(lake).undo(event_id, author=author)
    if json_out:
        print_json(event.model_dump(mode="json"))
    else:
        console.print(f"restored {event.field} of {event.episode_id} to {event.value!r}")


@app.command()
def history(
    episode_id: Annotated[str | None, typer.Argument(help="Only this episode.", show_default=False)] = None,
    lake: LakeOption = None,
    json_out: JsonOption = False,
) -> None:
    """The label history: every change with author, time, before and after."""
    events = open_lake(lake, read_only=True).label_events(episode_id=episode_id)
    if json_out:
        print_json({"events": [e.model_dump(mode="json") for e in events]})
        return
    for e in events:
        console.print(f"{e.at:%Y-%m-%d %H:%M:%S} {e.event_id} {e.author}: {e.episode_id} {e.field} "
                      f"{e.previous!r} -> {e.value!r}" + (f" ({e.note})" if e.note else ""))
