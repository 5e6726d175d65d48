"""The `curate` CLI as a user meets it: JSON with stable keys, one-line errors with non-zero exit codes."""

from __future__ import annotations

import json
import sys

import pytest

from curate.cli.main import main
from curate.lake import Lake
from tests.helpers import run_cli


def cli(capsys, monkeypatch, *args: str) -> tuple[int, str, str]:
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["curate", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def test_stats_json_has_the_documented_keys(filled_lake, capsys, monkeypatch):
    code, out, _ = cli(capsys, monkeypatch, "stats", "--lake", filled_lake.uri, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["episodes"] == 12
    assert data["steps"] == sum(3 + i for i in range(12))
    assert data["datasets"] == {"aloha": 4, "bridge": 8}


def test_ls_json_lists_matching_episodes_with_total(filled_lake, capsys, monkeypatch):
    code, out, _ = cli(capsys, monkeypatch, "ls", "--lake", filled_lake.uri, "--where", 'dataset == "bridge"',
                       "--limit", "3", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["total"] == 8
    assert len(data["episodes"]) == 3
    assert set(data["episodes"][0]) == {"episode_id", "dataset", "instruction", "n_steps"}
    assert all(e["dataset"] == "bridge" for e in data["episodes"])


def test_ls_uses_the_lake_from_the_environment(filled_lake, capsys, monkeypatch):
    monkeypatch.setenv("CURATE_LAKE", filled_lake.uri)
    code, out, _ = cli(capsys, monkeypatch, "ls", "--json")
    assert code == 0 and json.loads(out)["total"] == 12


def test_show_prints_the_episode_its_steps_and_label_history(filled_lake, capsys, monkeypatch):
    eid = filled_lake.episodes(columns=["episode_id"])["episode_id"][0]
    filled_lake.relabel([eid], "instruction", "relabelled", author="ana")
    code, out, _ = cli(capsys, monkeypatch, "show", eid, "--lake", filled_lake.uri, "--json", "--steps", "2")
    assert code == 0
    data = json.loads(out)
    assert data["episode_id"] == eid and data["instruction"] == "relabelled"
    assert len(data["steps"]) == 2 and data["steps"][0]["frames"][0]["camera"] == "front"
    assert data["labels"][0]["value"] == "relabelled"


def test_label_undo_and_history_through_the_cli(filled_lake, capsys, monkeypatch):
    code, out, _ = cli(capsys, monkeypatch, "label", "--lake", filled_lake.uri, "--where", 'dataset == "aloha"',
                       "--field", "tags", "--value", '["reviewed"]', "--author", "ana", "--json")
    assert code == 0
    events = json.loads(out)["events"]
    assert len(events) == 4
    assert Lake(filled_lake.uri).count('"reviewed" in tags') == 4
    code, out, _ = cli(capsys, monkeypatch, "undo", events[0]["event_id"], "--lake", filled_lake.uri, "--json")
    assert code == 0
    assert Lake(filled_lake.uri).count('"reviewed" in tags') == 3
    code, out, _ = cli(capsys, monkeypatch, "history", "--lake", filled_lake.uri, "--json")
    assert len(json.loads(out)["events"]) == 5


def test_doctor_reports_a_healthy_lake(filled_lake, capsys, monkeypatch):
    code, out, _ = cli(capsys, monkeypatch, "doctor", "--lake", filled_lake.uri, "--json")
    assert code == 0
    assert json.loads(out)["ok"] is True


def test_doctor_finds_an_episode_whose_steps_are_missing(filled_lake, capsys, monkeypatch):
    import lance

    steps = lance.dataset(f"{filled_lake.uri}/steps.lance")
    victim = filled_lake.episodes(columns=["episode_id"])["episode_id"][0]
    steps.delete(f"episode_id = '{victim}'")
    code, out, _ = cli(capsys, monkeypatch, "doctor", "--lake", filled_lake.uri, "--json")
    assert code == 1
    findings = json.loads(out)["findings"]
    assert any(victim in f["message"] for f in findings)


@pytest.mark.parametrize(("args", "code", "needle"), [
    (["ls", "--where", 'dataset == '], 2, "expected a value"),
    (["ls", "--where", 'colour == "red"'], 2, "unknown field 'colour'"),
    (["show", "ep_doesnotexist"], 4, "is not in lake"),
    (["show", "../../etc/passwd"], 4, "not a valid episode id"),
])
def test_user_mistakes_get_one_line_errors_and_exit_codes(filled_lake, capsys, monkeypatch, args, code, needle):
    got, _out, err = cli(capsys, monkeypatch, *args, "--lake", filled_lake.uri)
    assert got == code
    assert needle in err
    assert "Traceback" not in err
    assert err.startswith("Error: ")


def test_a_path_that_is_not_a_lake_is_a_clear_error_and_changes_nothing(tmp_path, capsys, monkeypatch):
    code, _, err = cli(capsys, monkeypatch, "stats", "--lake", str(tmp_path))
    assert code == 3
    assert "is not a lake" in err and "curate demo" in err
    assert list(tmp_path.iterdir()) == []


def test_every_command_offers_lake_and_json(capsys, monkeypatch):
    for command in ("stats", "ls", "show", "doctor", "demo", "label", "history", "undo", "versions", "vacuum"):
        code, out, _ = cli(capsys, monkeypatch, command, "--help")
        assert code == 0, command
        assert "--lake" in out and "--json" in out, command


@pytest.mark.slow
def test_demo_then_stats_shows_the_demo_episodes_through_the_real_entry_point(tmp_path):
    lake = tmp_path / "demo"
    result = run_cli("demo", "--lake", str(lake), "--no-ui", "--no-embed", "--episodes", "24", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    stats = run_cli("stats", "--lake", str(lake), "--json")
    assert stats.returncode == 0, stats.stderr
    data = json.loads(stats.stdout)
    assert data["episodes"] == report["episodes"] >= 24
    assert "deploy_kitchen" in data["datasets"]
    assert sum(data["datasets"].values()) == data["episodes"]


def test_connectors_lists_every_registered_format(capsys, monkeypatch):
    from connectors import registry

    code, out, _ = cli(capsys, monkeypatch, "connectors", "--json")
    assert code == 0
    listed = json.loads(out)["connectors"]
    assert [c["format"] for c in listed] == registry.names()
    assert all(c["description"] for c in listed)
