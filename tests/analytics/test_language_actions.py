"""Language and action audits on inputs whose answers are known."""

from __future__ import annotations

import numpy as np
import polars as pl

from curate.analytics.actions import episode_quality
from curate.analytics.language import language_audit_of, objects_of, style_of


def test_styles_are_classified_by_their_stated_rules() -> None:
    assert style_of("put the red cube in the bowl") == "imperative"
    assert style_of("can you put the red cube into the box?") == "question"
    assert style_of("move the cube left of the green ball into the bowl") == "deictic"
    assert style_of("yo, red cube goes in the box pls") == "colloquial"


def test_objects_are_the_words_after_the() -> None:
    assert objects_of("put the red cube in the bowl") == ["red cube", "bowl"]


def test_language_audit_counts_missing_placeholders_and_near_duplicate_phrasings() -> None:
    frame = pl.DataFrame({"episode_id": [f"e{i}" for i in range(6)],
                          "instruction": ["Put the cup in the sink.", "put the cup in the sink", None, "n/a",
                                          "can you open the drawer?", "put the cup in the sink"]})
    tables, summary = language_audit_of(frame)
    assert summary["missing"] == 1 and summary["placeholder"] == 1
    assert summary["with_instruction"] == 4
    assert summary["unique_instructions"] == 3 and summary["unique_normalised"] == 2
    assert summary["near_duplicate_groups"] == 1
    assert summary["styles"] == {"imperative": 3, "question": 1}
    assert summary["top_verbs"]["put"] == 3
    assert tables["near_duplicates"]["episodes"][0] == 3


def test_episode_quality_measures_idle_jerk_and_gripper_chatter() -> None:
    t = 40
    actions = np.zeros((t, 2), dtype=np.float32)
    actions[:, 0] = np.linspace(0, 1, t)
    actions[:, 1] = [1.0 if (i // 2) % 2 else 0.0 for i in range(t)]  # gripper flips every 2 steps
    states = np.zeros((t, 2), dtype=np.float32)
    states[20:, 0] = np.linspace(0, 1, 20)  # still for the first 20 steps
    q = episode_quality(actions, states, hz=10.0, gripper_dim=1)
    assert q["length"] == t
    assert q["idle_fraction"] == 20 / 39  # 19 still steps, plus the step into linspace(0, ...)
    assert q["gripper_chatter"] == 19 - 2
    smooth = episode_quality(actions[:, :1], None, hz=10.0, gripper_dim=None)
    assert smooth["jerk"] < 1e-3 and smooth["gripper_chatter"] == 0
