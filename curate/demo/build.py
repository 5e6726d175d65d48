"""Turn the demo world into a lake: `build_demo(lake_uri, episodes=N, seed=S)`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

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


@dataclass
class DemoReport:
    lake: str
    episodes: int
    steps: int
    datasets: dict[str, int]
    seconds: float
    stages: dict[str, Any] = field(default_factory=dict)


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


def build_demo(lake_uri: str, *, episodes: int = DEFAULT_EPISODES, seed: int = DEFAULT_SEED,
               progress: Callable[[str, int, int], None] | None = None) -> DemoReport:
    """Generate the demo world and write it into the lake at `lake_uri` (created if needed).

    Deterministic: the same `episodes` and `seed` give the same episode ids and content, so running it
    twice replaces the same episodes rather than adding copies.
    """
    started = time.perf_counter()
    world = build_world(episodes, seed=seed)
    lake = Lake.create(lake_uri)
    done = 0

    def stream() -> Iterator[Episode]:
        for demo in world:
            yield to_episode(demo)

    def on_batch(result: Any) -> None:
        nonlocal done
        done += result.episodes
        if progress is not None:
            progress("write", done, len(world))

    result = lake.write_episodes(stream(), batch_size=64, on_batch=on_batch)
    lake.optimize()
    datasets: dict[str, int] = {}
    for demo in world:
        datasets[demo.dataset] = datasets.get(demo.dataset, 0) + 1
    return DemoReport(lake=lake.uri, episodes=result.episodes, steps=result.steps, datasets=datasets,
                      seconds=round(time.perf_counter() - started, 2))
