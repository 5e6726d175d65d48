"""`curate embed`, `curate train-clip`, `curate search`, `curate audit`: CLIP vectors, semantic search, audits.

    curate embed --lake L                                   # default CLIP (cached weights), new episodes only
    curate embed --lake L --pretrained ./my_clip.pt         # a local checkpoint (arch from its sidecar or --model)
    curate train-clip --lake L && curate embed --lake L --pretrained L/models/curate-small-lake.pt
    curate search "red cube" --lake L --where 'dataset == "bridge"' --k 5 --json
    curate search --like ep_0123 --lake L
    curate audit --lake L --out report.html --json metrics.json
    curate audit --lake L --reference 'split != "deploy"' --target 'split == "deploy"' --out shift.html
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from curate.cli.common import JsonOption, LakeOption, WhereOption, console, open_lake, print_json
from curate.cli.main import app

ModelOpt = Annotated[str | None, typer.Option("--model", help="open_clip architecture (default ViT-B-32, or the "
                                              "checkpoint's own).", show_default=False)]
PretrainedOpt = Annotated[str | None, typer.Option("--pretrained", help="Pretrained tag (from the hub cache) or a "
                                                   "local checkpoint path.", show_default=False)]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")]


def _progress(disable: bool) -> tuple[Progress, object]:
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=console, disable=disable)
    tasks: dict[str, int] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    return bar, update


@app.command()
def embed(
    lake: LakeOption = None,
    model: ModelOpt = None,
    pretrained: PretrainedOpt = None,
    device: DeviceOpt = "auto",
    batch: Annotated[int, typer.Option("--batch", min=1, help="Images per forward pass.")] = 64,
    where: WhereOption = None,
    keyframes: Annotated[str, typer.Option(help="Keyframes per episode: first,middle,last | fractions | every:N")] = (
        "first,middle,last"),
    workers: Annotated[int, typer.Option(min=1, help="Decoding threads.")] = 2,
    train_on_lake: Annotated[bool, typer.Option("--train-on-lake", help="First train curate-small (or fine-tune "
                                                "--model/--pretrained) on this lake, then embed with it.")] = False,
    derive: Annotated[bool, typer.Option("--derive/--no-derive", help="Store clusters and machine tags for "
                                         "filters (cluster == 3, \"cluttered\" in machine_tags).")] = True,
    json_out: JsonOption = False,
    engine: Annotated[str, typer.Option("--engine", help="local (threads on this machine) or ray (Ray Data: CPU "
                                        "decode tasks feeding model actors, GPU when the cluster has one).")] = (
        "local"),
    address: Annotated[str | None, typer.Option("--address", help="Ray cluster to join with --engine ray; "
                                                "default: start a local Ray.", show_default=False)] = None,
    model_actors: Annotated[int | None, typer.Option("--model-actors", min=1, help="--engine ray: model replicas "
                                                     "(default: one per GPU, or one per CPU without GPUs).",
                                                     show_default=False)] = None,
) -> None:
    """Embed keyframes and instructions of new or changed episodes into the lake's vector table."""
    from dataclasses import asdict

    from curate.embed import embed_lake
    from curate.models import DEFAULT_ARCH, DEFAULT_PRETRAINED, load_model

    the_lake = open_lake(lake)
    bar, update = _progress(json_out)
    out: dict = {}
    with bar:
        if train_on_lake:
            from curate.train_clip import train_on_lake as train

            kwargs = {"arch": model} if model else {}
            trained = train(the_lake, pretrained=pretrained, device=device, progress=update, **kwargs)
            out["train"] = asdict(trained)
            clip = load_model(pretrained=trained.checkpoint, device=device)
        else:
            tag = pretrained or (DEFAULT_PRETRAINED if (model or DEFAULT_ARCH) == DEFAULT_ARCH else None)
            clip = load_model(model, tag, device=device)
        if engine == "ray":
            from curate.distributed import embed_ray

            report = embed_ray(the_lake, model=clip, device=device, batch=batch, where=where, keyframes=keyframes,
                               address=address, model_actors=model_actors, progress=update)
        elif engine == "local":
            report = embed_lake(the_lake, model=clip, batch=batch, where=where, keyframes=keyframes,
                                workers=workers, progress=update)
        else:
            from curate.errors import ConfigError

            raise ConfigError(f"--engine must be local or ray, got {engine!r}")
        out["embed"] = asdict(report)
        if derive and report.episodes_embedded:
            from curate.analytics import derive as derive_fn

            out["derive"] = derive_fn(the_lake, model_id=clip.model_id)
    if json_out:
        print_json(out)
        return
    console.print(f"[bold green]embedded[/] {report.episodes_embedded} episodes ({report.images} keyframes, "
                  f"{report.texts} texts) with {report.model_id}; {report.episodes_skipped} unchanged; "
                  f"{report.images_per_s:.0f} images/s")
    for err in report.errors[:5]:
        console.print(f"[yellow]skipped[/] {err}")


@app.command("train-clip")
def train_clip(
    lake: LakeOption = None,
    model: Annotated[str, typer.Option("--model", help="Architecture to train.")] = "curate-small",
    pretrained: PretrainedOpt = None,
    where: WhereOption = None,
    epochs: Annotated[int, typer.Option(min=1)] = 10,
    batch: Annotated[int, typer.Option(min=2)] = 32,
    lr: Annotated[float, typer.Option(help="Peak learning rate (divided by 100 when fine-tuning).")] = 3e-3,
    out: Annotated[str | None, typer.Option("--out", help="Checkpoint path (default <lake>/models/<arch>-lake.pt)."
                                            , show_default=False)] = None,
    device: DeviceOpt = "auto",
    json_out: JsonOption = False,
) -> None:
    """Train (or fine-tune) a CLIP contrastively on the lake's (keyframe, instruction) pairs."""
    from dataclasses import asdict

    from curate.train_clip import train_on_lake

    the_lake = open_lake(lake, read_only=True)
    bar, update = _progress(json_out)
    with bar:
        report = train_on_lake(the_lake, arch=model, pretrained=pretrained, where=where, epochs=epochs, batch=batch,
                               lr=lr, out=out, device=device, progress=update)
    if json_out:
        print_json(asdict(report))
        return
    console.print(f"[bold green]trained[/] {report.arch} on {report.pairs} pairs in {report.seconds:.0f}s "
                  f"(loss {report.first_loss} -> {report.final_loss}); checkpoint {report.checkpoint}")
    console.print(f"next: `curate embed --lake {the_lake.uri} --pretrained {report.checkpoint}`")


@app.command()
def search(
    text: Annotated[str | None, typer.Argument(help="What to look for, e.g. \"red cube in a bowl\".")] = None,
    image: Annotated[Path | None, typer.Option("--image", help="Find episodes that look like this image.")] = None,
    like: Annotated[str | None, typer.Option("--like", help="Find episodes similar to this episode id.")] = None,
    lake: LakeOption = None,
    where: WhereOption = None,
    k: Annotated[int, typer.Option("--k", min=1, help="Episodes to return.")] = 10,
    model_id: Annotated[str | None, typer.Option("--model-id", help="Vectors of this model (default: the active "
                                                 "one).", show_default=False)] = None,
    json_out: JsonOption = False,
) -> None:
    """Semantic search over the lake's CLIP vectors, within a filter."""
    from curate.search import results_json
    from curate.search import search as run

    results = run(open_lake(lake, read_only=True), text, image=str(image) if image else None, like=like,
                  where=where, k=k, model_id=model_id)
    if json_out:
        print_json(results_json(results))
        return
    table = Table("score", "episode_id", "dataset", "keyframe", "instruction", title=f"{results.height} results")
    for r in results.iter_rows(named=True):
        table.add_row(f"{r['score']:.4f}", r["episode_id"], r["dataset"] or "", r["item"] or "",
                      r["instruction"] or "")
    console.print(table)


@app.command()
def audit(
    lake: LakeOption = None,
    where: WhereOption = None,
    out: Annotated[Path, typer.Option("--out", help="HTML report to write.")] = Path("report.html"),
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write every number as JSON here.",
                                                   show_default=False)] = None,
    reference: Annotated[str | None, typer.Option("--reference", help="Shift audit: filter of the reference "
                                                  "(training) episodes.", show_default=False)] = None,
    target: Annotated[str | None, typer.Option("--target", help="Shift audit: filter of the target (deployment) "
                                               "episodes.", show_default=False)] = None,
    k: Annotated[int | None, typer.Option("--k", help="Number of clusters (default: chosen by silhouette).",
                                          show_default=False)] = None,
    near_threshold: Annotated[float, typer.Option(help="Cosine similarity above which episodes are "
                                                  "near-duplicates.")] = 0.98,
    vocab: Annotated[Path | None, typer.Option("--vocab", help="JSON vocabularies for zero-shot tags.",
                                               show_default=False)] = None,
) -> None:
    """Audit coverage, long tail, tags, language, duplicates, actions (and shift) into a self-contained HTML."""
    from curate.analytics import run_audit
    from curate.analytics.tags import load_vocabularies
    from curate.errors import ConfigError
    from curate.report_html import write_report

    if reference is not None and target is None:
        raise ConfigError("--reference needs --target (the deployment slice to compare)")
    the_lake = open_lake(lake, read_only=True)
    bar, update = _progress(False)
    with bar:
        result = run_audit(the_lake, where=where, reference=reference, target=target, k=k,
                           near_threshold=near_threshold, vocabularies=load_vocabularies(vocab), progress=update)
    write_report(result, str(out), the_lake, json_path=str(json_path) if json_path else None)
    c = result.metrics["coverage"]
    console.print(f"[bold green]report[/] {out}: {c['episodes']} episodes, {c['k']} clusters, tail share "
                  f"{c['tail_share']:.1%}" + (f"; target covered {result.metrics['shift']['target_covered_share']:.1%}"
                                              if "shift" in result.metrics else ""))
    if json_path:
        console.print(f"metrics: {json_path}")
