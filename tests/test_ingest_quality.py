"""Quality flags computed at ingest from Episode objects or columns (the same for every connector)."""

from __future__ import annotations

import math

from curate.quality import IDLE_RUN, quality_flags
from schemas import Frame
from tests.helpers import jpeg_bytes, make_episode
from tests.test_fast_paths import as_columns


def test_a_clean_episode_has_no_flags() -> None:
    assert quality_flags(make_episode(0)) == []


def test_empty_and_placeholder_instructions_are_flagged() -> None:
    assert "empty_instruction" in quality_flags(make_episode(0, instruction=None))
    assert "empty_instruction" in quality_flags(make_episode(0, instruction="  "))
    assert "placeholder_instruction" in quality_flags(make_episode(0, instruction="N/A"))


def test_missing_is_last_zero_first_action_and_nonfinite_values_are_flagged() -> None:
    ep = make_episode(0, n_steps=4)
    steps = [s.model_copy(update={"is_last": False}) for s in ep.steps]
    steps[0] = steps[0].model_copy(update={"action": [0.0, 0.0, 0.0]})
    steps[2] = steps[2].model_copy(update={"state": [math.nan, 1.0]})
    flags = quality_flags(ep.model_copy(update={"steps": steps}))
    assert {"no_is_last", "zero_first_action", "nonfinite_values"} <= set(flags)


def test_long_constant_action_runs_are_idle() -> None:
    n = IDLE_RUN + 5
    ep = make_episode(0, n_steps=n)
    steps = [s.model_copy(update={"action": [0.1, 0.2, 0.3]}) for s in ep.steps]
    assert "idle_actions" in quality_flags(ep.model_copy(update={"steps": steps}))
    assert "idle_actions" not in quality_flags(make_episode(0, n_steps=n))


def test_black_camera_and_frame_count_mismatch_are_flagged() -> None:
    ep = make_episode(0, n_steps=3, cameras=("front", "wrist"))
    steps = []
    for s in ep.steps:
        frames = [Frame(camera="front", format="jpeg", data=jpeg_bytes((120, 80, 40))),
                  Frame(camera="wrist", format="jpeg", data=jpeg_bytes((0, 0, 0)))]
        steps.append(s.model_copy(update={"frames": frames if s.index else frames[:1]}))
    flags = quality_flags(ep.model_copy(update={"steps": steps}))
    assert "black_camera:wrist" in flags and "black_camera:front" not in flags
    assert "frame_count_mismatch" in flags


def test_language_only_episode_is_flagged() -> None:
    ep = make_episode(0, n_steps=0, steps=[], duration_s=0.0, segments=[])
    assert quality_flags(ep) == ["language_only"]


def test_flags_are_the_same_for_step_objects_and_columns() -> None:
    ep = make_episode(0, n_steps=IDLE_RUN + 2, cameras=("front", "wrist", "side"))
    steps = []
    for s in ep.steps:
        frames = [Frame(camera="front", format="jpeg", data=jpeg_bytes((120, 80, 40))),
                  Frame(camera="wrist", format="jpeg", data=jpeg_bytes((0, 0, 0))),
                  Frame(camera="side", format="png", data=b"not an image")]
        steps.append(s.model_copy(update={"frames": frames if s.index else frames[:1], "is_last": False,
                                          "action": [0.0, 0.0, 0.0], "reward": math.inf if s.index == 3 else None,
                                          "state": None if s.index % 2 else [1.0, math.nan]}))
    cases = [ep.model_copy(update={"steps": steps}), make_episode(1, n_steps=5, instruction="todo"),
             make_episode(2, n_steps=3, cameras=())]
    for episode in cases:
        assert quality_flags(as_columns(episode)) == quality_flags(episode)
    assert {"black_camera:wrist", "undecodable_frame:side", "frame_count_mismatch", "idle_actions",
            "zero_first_action", "nonfinite_values", "no_is_last"} <= set(quality_flags(as_columns(cases[0])))
    empty = make_episode(3, n_steps=0, steps=[], duration_s=0.0, segments=[])
    assert quality_flags(as_columns(empty)) == ["language_only"]
