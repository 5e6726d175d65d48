"""Turn the demo world into a lake: `build_demo(lake_uri, episodes=N, seed=S)`.

By default the demo takes the product's own path: it writes each demo dataset in a real source format
(RLDS, LeRobot v3.0 with H.264 video, ALOHA HDF5, a rosbag2 MCAP bag per deployment episode, and a few
ALFRED trials) into `<lake>-sources/`, then ingests them with the ingest engine like any user's data.
`via="schema"` skips the files and writes the episodes straight through the schema (faster; it keeps the
world's ground truth in `metadata["demo_truth"]`, which tests of analytics use).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from curate.demo.world import IMAGE_SIZE, WRIST_SIZE, DemoEpisode, build_world
from curate.lake import Lake
from schemas import (
    Camera,
    Embodiment,
    Episode,
    Frame,
    Segment,
    Source,
    Space,
    Step,
    episode_id_for,
    fingerprint_of,
)

DEFAULT_EPISODES = 400
DEFAULT_SEED = 7
ALFRED_TRIALS = 8

Via = Literal["formats", "schema"]
Progress = Callable[[str, int, int], None]


@dataclass
class DemoReport:
    lake: str
    episodes: int
    steps: int
    datasets: dict[str, int]
    seconds: float
    via: str = "formats"
    sources: dict[str, str] = field(default_factory=dict)
    stages: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SourcePlan:
    """One demo dataset: which format it is written in and which connector reads it back."""

    dataset: str
    format: str
    path: str
    options: dict[str, Any] = field(default_factory=dict)


SOURCE_FORMATS: dict[str, str] = {
    "tabletop_franka": "rlds",
    "tabletop_widowx": "rlds",
    "tabletop_so101": "lerobot",
    "tabletop_aloha": "aloha",
    "deploy_kitchen": "rosbag",
}
"""Which real format each demo dataset is written in (the ALFRED trials come from their own generator)."""


def to_episode(demo: DemoEpisode, *, source_format: str = "demo", uri: str = "demo://world") -> Episode:
    """The schema form of a demo episode (what a connector would produce from its files)."""
    robot = demo.robot
    n = demo.n_steps
    steps = []
    for t in range(n):
        frames = [Frame(camera=cam, format="jpeg", data=demo.frames[cam][t]) for cam in robot.cameras]
        steps.append(Step(index=t, timestamp_s=t / robot.hz, action=demo.actions[t].tolist(),
                          state=demo.states[t].tolist(), reward=float(t == n - 1 and demo.success),
                          is_first=t == 0, is_last=t == n - 1, is_terminal=t == n - 1 and demo.success,
                          language=demo.instruction, frames=frames))
    fingerprint = fingerprint_of(demo.key, demo.actions.tobytes(), *(b for f in demo.frames.values() for b in f[:1]))
    return Episode(
        episode_id=episode_id_for(demo.dataset, demo.key),
        dataset=demo.dataset,
        source=Source(format=source_format, uri=uri, key=demo.key, fingerprint=fingerprint),
        embodiment=Embodiment(robot=robot.name, kind=robot.kind, is_sim=True),
        action_space=Space(kind=robot.action_kind, dim=len(robot.action_names), names=list(robot.action_names)),
        state_space=Space(kind="eef_abs" if robot.action_kind == "eef_delta" else "joint_pos",
                          dim=len(robot.state_names), names=list(robot.state_names)),
        control_hz=robot.hz,
        instruction=demo.instruction,
        instructions_alt=demo.instructions_alt,
        segments=[Segment(start=s, end=e, text=text, kind="subgoal") for s, e, text in demo.segments],
        cameras=[Camera(name=c, height=IMAGE_SIZE if c in ("front", "cam_high") else WRIST_SIZE,
                        width=IMAGE_SIZE if c in ("front", "cam_high") else WRIST_SIZE) for c in robot.cameras],
        n_steps=n,
        duration_s=n / robot.hz,
        success=demo.success,
        scene=demo.scene,
        task_type="pick_and_place",
        objects=[f"{c} {s}" for c, s in [demo.target, *demo.distractors]],
        split=demo.split,
        metadata={"demo_truth": demo.truth, "lighting": demo.lighting, "receptacle": demo.receptacle},
        steps=steps,
    )


def default_sources_dir(lake_uri: str) -> Path:
    """Where the demo writes its source files: beside the lake, `<lake>-sources/`."""
    return Path(f"{lake_uri.rstrip('/')}-sources")


def write_sources(world: list[DemoEpisode], root: Path, *, seed: int = DEFAULT_SEED,
                  progress: Progress | None = None) -> list[SourcePlan]:
    """Write every demo dataset in its real format under `root` (replacing what was there)."""
    from curate.demo import write_alfred, write_hdf5, write_lerobot, write_rlds, write_rosbag

    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    by_dataset: dict[str, list[DemoEpisode]] = {}
    for demo in world:
        by_dataset.setdefault(demo.dataset, []).append(demo)
    plans: list[SourcePlan] = []
    total = len(by_dataset) + 1
    for done, (dataset, demos) in enumerate(sorted(by_dataset.items()), start=1):
        fmt = SOURCE_FORMATS[dataset]
        if fmt == "rlds":
            path = write_rlds.write(demos, root / "rlds") / dataset / write_rlds.VERSION
        elif fmt == "lerobot":
            path = write_lerobot.write(demos, root / "lerobot" / dataset, version="v3.0", visual="video")
        elif fmt == "aloha":
            path = write_hdf5.write(demos, root / "aloha" / dataset)
        else:
            path = write_rosbag.write(demos, root / "rosbag" / dataset)
        options = {"mapping": rosbag_mapping(demos[0])} if fmt == "rosbag" else {}
        plans.append(SourcePlan(dataset=dataset, format=fmt, path=str(path), options=options))
        if progress is not None:
            progress("write sources", done, total)
    alfred = write_alfred.write(root / "alfred", trials=ALFRED_TRIALS, seed=seed)
    plans.append(SourcePlan(dataset="alfred_demo", format="alfred", path=str(alfred)))
    if progress is not None:
        progress("write sources", total, total)
    return plans


def rosbag_mapping(demo: DemoEpisode) -> dict[str, Any]:
    """The topic mapping a team would write for the demo's bags (see docs/connectors/rosbag.md)."""
    robot = demo.robot
    return {
        "robot": robot.name, "embodiment_kind": robot.kind, "rate_hz": robot.hz,
        "action_kind": robot.action_kind, "state_kind": "eef_abs" if robot.action_kind == "eef_delta" else "joint_pos",
        "action": {"topic": "/joint_commands"}, "state": [{"topic": "/joint_states"}],
        "cameras": [{"name": cam, "topic": f"/camera/{cam}/image/compressed"} for cam in robot.cameras],
        "instruction": {"source": "topic", "topic": "/instruction"},
    }


def _ingest_sources(lake: Lake, plans: list[SourcePlan], progress: Progress | None) -> dict[str, Any]:
    from curate.ingest import ingest

    reports: dict[str, Any] = {}
    for i, plan in enumerate(plans):
        report = ingest([plan.path], lake=lake, format=plan.format, dataset=plan.dataset, extra=plan.options)
        if report.rejected:
            from curate.errors import IngestError

            raise IngestError(f"the demo's own {plan.format} source {plan.path} had {report.rejected} rejected "
                              f"episodes: {report.to_dict().get('rejections', [])[:3]}")
        reports[plan.dataset] = {"format": plan.format, "episodes": report.episodes, "steps": report.steps}
        if progress is not None:
            progress("ingest", i + 1, len(plans))
    return reports


def build_demo(lake_uri: str, *, episodes: int = DEFAULT_EPISODES, seed: int = DEFAULT_SEED, via: Via = "formats",
               sources_dir: str | Path | None = None, embed: bool = False,
               progress: Progress | None = None) -> DemoReport:
    """Generate the demo world and build the lake at `lake_uri` from it (created if needed).

    Deterministic: the same `episodes` and `seed` give the same episode ids and content, so running it
    twice changes nothing the second time (the ingest skips unchanged episodes).

    Args:
        via: "formats" writes real source files and ingests them (the product path); "schema" writes the
            episodes directly (keeps ground truth in metadata).
        sources_dir: where "formats" writes the source files (default `<lake>-sources/`).
        embed: then run `curate.embed.demo_pipeline`: a CLIP (pretrained if on this machine, else trained on
            the lake), vectors, clusters, machine tags and the deployment shift (what `curate demo` does).
        progress: called as `progress(stage, done, total)`.
    """
    started = time.perf_counter()
    world = build_world(episodes, seed=seed)
    lake = Lake.create(lake_uri)
    stages: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if via == "formats":
        if "://" in lake_uri and not lake_uri.startswith("file://"):
            raise ValueError("the demo writes its source files next to the lake: give a local --lake, "
                             "or pass sources_dir")
        t0 = time.perf_counter()
        plans = write_sources(world, Path(sources_dir) if sources_dir else default_sources_dir(lake_uri),
                              seed=seed, progress=progress)
        stages["write_sources_s"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        stages["ingest"] = _ingest_sources(lake, plans, progress)
        stages["ingest_s"] = round(time.perf_counter() - t0, 2)
        sources = {p.dataset: p.path for p in plans}
    elif via == "schema":
        _write_through_schema(lake, world, progress)
    else:
        raise ValueError(f"via must be 'formats' or 'schema', got {via!r}")
    lake.refresh().optimize()
    if embed:
        from curate.embed import demo_pipeline

        t0 = time.perf_counter()
        summary = demo_pipeline(lake.uri, progress=progress)
        stages["embed"] = {"model": summary.get("model_source"), "shift": summary.get("shift")}
        stages["embed_s"] = round(time.perf_counter() - t0, 2)
    stats = lake.refresh().stats()
    return DemoReport(lake=lake.uri, episodes=stats["episodes"], steps=stats["steps"], datasets=stats["datasets"],
                      seconds=round(time.perf_counter() - started, 2), via=via, sources=sources, stages=stages)


def _write_through_schema(lake: Lake, world: list[DemoEpisode], progress: Progress | None) -> None:
    done = 0

    def stream() -> Iterator[Episode]:
        for demo in world:
            yield to_episode(demo)

    def on_batch(result: Any) -> None:
        nonlocal done
        done += result.episodes
        if progress is not None:
            progress("write", done, len(world))

    lake.write_episodes(stream(), batch_size=64, on_batch=on_batch)


def report_dict(report: DemoReport) -> dict[str, Any]:
    return asdict(report)
