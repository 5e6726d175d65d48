"""The contract: models validate with clear errors, Arrow schemas derive from them, rows round-trip."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas import (
    EPISODES_SCHEMA,
    FRAMES_SCHEMA,
    LABELS_SCHEMA,
    STEPS_SCHEMA,
    Episode,
    Frame,
    LabelEvent,
    Segment,
    Space,
    Step,
    episode_id_for,
)
from schemas.arrow import model_to_row, row_to_model
from schemas.episode import EPISODE_ROW_EXCLUDE
from tests.helpers import make_episode


def test_episode_id_is_stable_and_depends_on_dataset_and_key():
    assert episode_id_for("bridge", "train/0") == episode_id_for("bridge", "train/0")
    assert episode_id_for("bridge", "train/0") != episode_id_for("bridge", "train/1")
    assert episode_id_for("bridge", "train/0") != episode_id_for("fractal", "train/0")


def test_validation_error_names_the_field_and_the_value():
    with pytest.raises(ValidationError) as err:
        make_episode(0, control_hz=-5)
    text = str(err.value)
    assert "control_hz" in text and "-5" in text


def test_space_names_must_match_its_dimension():
    with pytest.raises(ValidationError, match="names has 2 entries but dim is 3"):
        Space(kind="eef_delta", dim=3, names=["x", "y"])


def test_n_steps_must_match_the_steps_given():
    ep = make_episode(0, n_steps=3)
    with pytest.raises(ValidationError, match="n_steps is 5 but 3 steps"):
        Episode.model_validate({**ep.model_dump(), "n_steps": 5})


def test_segment_end_before_start_is_rejected():
    with pytest.raises(ValidationError, match="before its start"):
        Segment(start=5, end=2, text="x")


def test_unknown_fields_are_rejected_not_silently_dropped():
    with pytest.raises(ValidationError, match="colour"):
        Frame(camera="front", format="jpeg", data=b"x", colour="red")


def test_arrow_schemas_are_derived_from_the_models():
    assert EPISODES_SCHEMA.names == [n for n in Episode.model_fields if n not in EPISODE_ROW_EXCLUDE]
    assert STEPS_SCHEMA.names[2:] == [n for n in Step.model_fields if n != "frames"]
    assert FRAMES_SCHEMA.names[3:] == list(Frame.model_fields)
    assert LABELS_SCHEMA.names == list(LabelEvent.model_fields)
    assert STEPS_SCHEMA.field("action").type == pa.list_(pa.float32())
    assert EPISODES_SCHEMA.field("metadata").type == pa.string()
    assert not EPISODES_SCHEMA.field("episode_id").nullable
    assert EPISODES_SCHEMA.field("success").nullable


def test_vectors_are_float32_so_models_equal_what_the_lake_returns():
    step = Step(index=0, timestamp_s=0.0, action=[0.1, 1 / 3])
    assert step.action == [pa.scalar(0.1, pa.float32()).as_py(), pa.scalar(1 / 3, pa.float32()).as_py()]


texts = st.text(min_size=0, max_size=20)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(
    instruction=st.none() | texts,
    tags=st.lists(texts, max_size=4),
    success=st.none() | st.booleans(),
    metadata=st.dictionaries(st.text(min_size=1, max_size=8), st.integers() | texts | st.booleans(), max_size=4),
    n_steps=st.integers(min_value=0, max_value=5),
)
def test_episode_row_round_trip_is_field_for_field(instruction, tags, success, metadata, n_steps):
    ep = make_episode(1, n_steps=n_steps, instruction=instruction, tags=tags, success=success, metadata=metadata,
                      segments=[])
    row = model_to_row(ep, exclude=EPISODE_ROW_EXCLUDE)
    table = pa.Table.from_pylist([row], schema=EPISODES_SCHEMA)
    back = row_to_model(Episode, table.to_pylist()[0], steps=[s.model_dump() for s in ep.steps])
    assert back == ep


def test_step_and_frame_rows_round_trip():
    ep = make_episode(2, n_steps=3, cameras=("a", "b"))
    for step in ep.steps:
        row = model_to_row(step)
        assert row_to_model(Step, row) == step


def test_label_event_round_trips_any_json_value():
    for value in ["text", True, None, ["a", "b"], [{"start": 0, "end": 2, "text": "x", "kind": "tag"}]]:
        event = LabelEvent(episode_id="ep_1", field="tags", value=value, author="me")
        table = pa.Table.from_pylist([model_to_row(event)], schema=LABELS_SCHEMA)
        assert row_to_model(LabelEvent, table.to_pylist()[0]) == event
