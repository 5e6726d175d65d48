"""Each page's logic, run headless with Streamlit's AppTest against a demo lake."""

from __future__ import annotations

from pathlib import Path

import pytest

from curate.lake import Lake
from tests.app.apptest import open_page, table_with, texts

pytestmark = pytest.mark.usefixtures("ui_env")


def _first_id(lake_path: Path, where: str | None = None) -> str:
    return Lake(lake_path).page(where, limit=1)[1]["episode_id"][0]


# ------------------------------------------------------------------------------------------------ overview
def test_overview_shows_the_same_totals_as_lake_stats(ui_env: Path) -> None:
    stats = Lake(ui_env).stats()
    at = open_page()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Episodes"] == f"{stats['episodes']:,}"
    assert metrics["Steps"] == f"{stats['steps']:,}"
    assert metrics["Datasets"] == str(len(stats["datasets"]))
    assert metrics["Embodiments"] == str(len(stats["embodiments"]))
    per_dataset = table_with(at, "hours")
    assert sorted(per_dataset["dataset"].tolist()) == sorted(stats["datasets"])
    assert "No relabels yet" in texts(at)


def test_overview_lists_recent_label_activity(ui_env: Path) -> None:
    eid = _first_id(ui_env)
    Lake(ui_env).relabel([eid], "tags", ["checked"], author="alice")
    at = open_page()
    recent = table_with(at, "author")
    assert recent["author"].tolist() == ["alice"]
    assert recent["episode_id"].tolist() == [eid]
    assert recent["after"].tolist() == ['["checked"]']


# ------------------------------------------------------------------------------------------------ browse
def test_browse_counts_and_pages_the_whole_lake(ui_env: Path) -> None:
    total = Lake(ui_env).count()
    at = open_page("views/browse.py")
    assert f"**{total:,}** episodes match" in texts(at)
    assert len(at.image) == len(at.checkbox) == 24  # one card (thumbnail and select box) per episode on page 1
    assert "…" not in texts(at)


def test_browse_facets_and_filter_box_narrow_the_results_like_the_cli(ui_env: Path) -> None:
    lake = Lake(ui_env)
    at = open_page("views/browse.py")
    at.multiselect(key="f_dataset").set_value(["tabletop_franka"]).run()
    expected = lake.count('dataset in ["tabletop_franka"]')
    assert f"**{expected:,}** episodes match" in texts(at)
    at.radio(key="f_success").set_value("failure").run()
    expected = lake.count('dataset == "tabletop_franka" and success == false')
    assert f"**{expected:,}** episodes match" in texts(at)
    at.text_input(key="where").set_value("n_steps > 28").run()
    expected = lake.count('dataset == "tabletop_franka" and success == false and n_steps > 28')
    assert f"**{expected:,}** episodes match" in texts(at)
    assert "curate ls --lake" in texts(at)


def test_browse_reports_a_bad_filter_with_its_position(ui_env: Path) -> None:
    at = open_page("views/browse.py")
    at.text_input(key="where").set_value("n_steps >").run()
    assert not at.exception
    assert any("Filter error" in e.value and "position" in e.value for e in at.error)


def test_browse_never_passes_facet_text_through_unparsed(ui_env: Path) -> None:
    at = open_page("views/browse.py")
    at.text_input(key="f_instruction").set_value('cube" or dataset != "x').run()
    assert not at.exception
    assert "**0** episodes match" in texts(at)


def test_bulk_add_tag_to_everything_matching_the_filter(ui_env: Path) -> None:
    lake = Lake(ui_env)
    where = 'dataset == "tabletop_aloha"'
    at = open_page("views/browse.py")
    at.text_input(key="where").set_value(where).run()
    at.radio(key="bulk_scope").set_value("matching").run()
    at.selectbox(key="bulk_action").set_value("add_tag").run()
    at.text_input(key="bulk_tag").set_value("needs-review").run()
    at.text_input(key="bulk_note").set_value("bimanual audit")
    at.button(key="bulk_apply").click().run()
    assert not at.exception
    fresh = Lake(ui_env)
    tagged = fresh.count('"needs-review" in tags')
    assert tagged == lake.count(where) > 0
    events = [e for e in fresh.label_events() if e.field == "tags"]
    assert {e.author for e in events} == {"tester"} and {e.note for e in events} == {"bimanual audit"}


def test_bulk_set_success_on_selected_episodes_only(ui_env: Path) -> None:
    ids = Lake(ui_env).page(None, limit=2)[1]["episode_id"].to_list()
    at = open_page("views/browse.py")
    for eid in ids:
        at.checkbox(key=f"sel_{eid}").check().run()
    at.radio(key="bulk_scope").set_value("selected").run()
    at.selectbox(key="bulk_action").set_value("set_success").run()
    at.radio(key="bulk_success").set_value(False).run()
    at.button(key="bulk_apply").click().run()
    assert not at.exception
    changed = Lake(ui_env).label_events()
    assert sorted(e.episode_id for e in changed) == sorted(ids)
    assert all(e.field == "success" and e.value is False for e in changed)


# ------------------------------------------------------------------------------------------------ episode
def test_episode_page_opens_from_the_url_at_the_given_step(ui_env: Path) -> None:
    eid = _first_id(ui_env, 'dataset == "tabletop_franka"')
    episode = Lake(ui_env).episode(eid, steps=False)
    at = open_page("views/episode.py", query={"episode": eid, "step": "4"})
    assert at.title[0].value == (episode.instruction or "(no instruction)")
    assert at.slider(key="step").value == 4
    assert len(at.image) == len(episode.cameras)
    at.slider(key="step").set_value(7).run()
    assert not at.exception
    assert "t = 0.70s" in texts(at)  # franka runs at 10 Hz


def test_episode_page_says_which_id_is_unknown(ui_env: Path) -> None:
    at = open_page("views/episode.py", query={"episode": "ep_doesnotexist"})
    assert any("ep_doesnotexist" in e.value for e in at.error)


def test_saving_labels_writes_label_events_and_shows_history(ui_env: Path) -> None:
    eid = _first_id(ui_env)
    at = open_page("views/episode.py", query={"episode": eid})
    at.text_input(key="ed_instruction_0").set_value("stack the blue block")
    at.selectbox(key="ed_success_0").set_value(False)
    at.multiselect(key="ed_tags_0").set_value(["occluded"])
    at.text_area(key="ed_notes_0").set_value("gripper slips at step 12")
    at.button[[b.label for b in at.button].index("Save labels")].click().run()
    assert not at.exception
    fresh = Lake(ui_env).episode(eid, steps=False)
    assert (fresh.instruction, fresh.success, fresh.tags, fresh.notes) == (
        "stack the blue block", False, ["occluded"], "gripper slips at step 12")
    fields = sorted(e.field for e in Lake(ui_env).label_events(episode_id=eid))
    assert fields == ["instruction", "notes", "success", "tags"]
    history = table_with(at, "after")
    assert "stack the blue block" in history["after"].tolist()


def test_a_concurrent_edit_is_reported_not_overwritten(ui_env: Path) -> None:
    eid = _first_id(ui_env)
    at = open_page("views/episode.py", query={"episode": eid})
    Lake(ui_env).relabel([eid], "instruction", "their version", author="bob")  # saved while we edit
    at.text_input(key="ed_instruction_0").set_value("my version")
    at.button[[b.label for b in at.button].index("Save labels")].click().run()
    assert not at.exception
    assert Lake(ui_env).episode(eid, steps=False).instruction == "their version"
    assert any("changed this episode" in e.value for e in at.error)
    conflict = table_with(at, "yours")
    assert conflict["yours"].tolist() == ["my version"] and conflict["theirs now"].tolist() == ["their version"]
    at.button(key="conflict_mine_0").click().run()
    assert not at.exception
    events = [e for e in Lake(ui_env).label_events(episode_id=eid) if e.field == "instruction"]
    assert [e.value for e in events] == ["their version", "my version"]
    assert events[-1].previous == "their version"


def test_undo_restores_the_previous_value_as_a_new_event(ui_env: Path) -> None:
    eid = _first_id(ui_env, "instruction is not null")
    lake = Lake(ui_env)
    before = lake.episode(eid, steps=False).instruction
    (event,) = lake.relabel([eid], "instruction", "oops", author="tester")
    at = open_page("views/episode.py", query={"episode": eid})
    at.selectbox(key=f"undo_pick_{eid}").set_value(event.event_id)
    at.button(key=f"undo_{eid}").click().run()
    assert not at.exception
    fresh = Lake(ui_env)
    assert fresh.episode(eid, steps=False).instruction == before
    assert len(fresh.label_events(episode_id=eid)) == 2


# ------------------------------------------------------------------------------------------------ read-only & logins
def test_read_only_hides_every_editing_control(ui_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURATE_UI_READ_ONLY", "1")
    eid = _first_id(ui_env)
    at = open_page("views/browse.py")
    assert len(at.checkbox) == 0 and not any(b.key == "bulk_apply" for b in at.button)
    at = open_page("views/episode.py", query={"episode": eid})
    labels = [b.label for b in at.button]
    assert "Save labels" not in labels and "Undo" not in labels
    assert all(t.key != "ed_instruction_0" for t in at.text_input)
    assert "Read-only" in texts(at)


def test_logins_gate_the_app_and_viewers_cannot_edit(ui_env: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from curate.auth import add_user

    users = tmp_path / "users.json"
    add_user(users, "vera", "viewer-pass-1", role="viewer")
    add_user(users, "ed", "editor-pass-1", role="editor")
    monkeypatch.setenv("CURATE_UI_USERS", str(users))
    eid = _first_id(ui_env)

    at = open_page("views/episode.py", query={"episode": eid})
    assert at.title[0].value == "Sign in" and len(at.metric) == 0
    at.text_input(key="login_name").set_value("vera")
    at.text_input(key="login_password").set_value("wrong-password")
    at.button[0].click().run()
    assert any("Wrong user name or password" in e.value for e in at.error)

    at.text_input(key="login_name").set_value("vera")
    at.text_input(key="login_password").set_value("viewer-pass-1")
    at.button[0].click().run()
    assert not at.exception
    assert "Signed in as **vera** (viewer)" in texts(at)
    assert "Save labels" not in [b.label for b in at.button]

    at = open_page("views/episode.py", query={"episode": eid})
    at.text_input(key="login_name").set_value("ed")
    at.text_input(key="login_password").set_value("editor-pass-1")
    at.button[0].click().run()
    assert "Save labels" in [b.label for b in at.button]
    at.text_input(key="ed_instruction_0").set_value("edited by ed")
    at.button[[b.label for b in at.button].index("Save labels")].click().run()
    assert Lake(ui_env).label_events(episode_id=eid)[-1].author == "ed"


# ------------------------------------------------------------------------------------------------ analysis pages
@pytest.mark.parametrize("page", ["views/coverage.py", "views/mixtures.py"])
def test_analysis_pages_render_without_error(ui_env: Path, page: str) -> None:
    at = open_page(page)
    assert at.title[0].value in ("Coverage", "Mixtures")
