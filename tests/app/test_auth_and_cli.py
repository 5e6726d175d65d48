"""Logins (hashing, roles) and `curate ui` refusing unsafe exposure, without starting a server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from curate.auth import add_user, authenticate, check_exposure, is_loopback, load_users, verify_password
from curate.cli.ui_cmd import ui_command
from curate.errors import ConfigError, NotALakeError


def test_passwords_are_stored_salted_and_hashed(tmp_path: Path) -> None:
    users = tmp_path / "users.json"
    add_user(users, "alice", "correct horse", role="editor")
    add_user(users, "bob", "correct horse", role="viewer")
    raw = users.read_text()
    assert "correct horse" not in raw
    entries = json.loads(raw)["users"]
    assert entries["alice"]["password"] != entries["bob"]["password"]  # different salts
    assert oct(users.stat().st_mode & 0o777) == "0o600"
    assert verify_password("correct horse", entries["alice"]["password"])
    assert not verify_password("wrong horse", entries["alice"]["password"])


def test_authenticate_returns_the_role_or_nothing(tmp_path: Path) -> None:
    users = tmp_path / "users.json"
    add_user(users, "alice", "s3cret-pass", role="editor")
    loaded = load_users(users)
    assert authenticate(loaded, "alice", "s3cret-pass").can_edit
    assert authenticate(loaded, "alice", "nope-nope") is None
    assert authenticate(loaded, "mallory", "s3cret-pass") is None


def test_bad_users_input_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="8 characters"):
        add_user(tmp_path / "u.json", "alice", "short")
    with pytest.raises(ConfigError, match="may only use"):
        add_user(tmp_path / "u.json", "../etc/passwd", "long-enough-pass")
    bad = tmp_path / "bad.json"
    bad.write_text('{"users": {"eve": {"role": "admin", "password": "x"}}}')
    with pytest.raises(ConfigError, match="role"):
        load_users(bad)


def test_exposing_the_ui_beyond_loopback_requires_logins(tmp_path: Path) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    check_exposure("127.0.0.1", None)
    with pytest.raises(ConfigError, match="requires logins"):
        check_exposure("0.0.0.0", None)
    users = tmp_path / "users.json"
    add_user(users, "alice", "s3cret-pass", role="editor")
    check_exposure("0.0.0.0", str(users))


def test_ui_command_binds_loopback_and_passes_options(demo_lake: Path, tmp_path: Path) -> None:
    cmd, env = ui_command([str(demo_lake)], port=8999, read_only=True)
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--server.port") + 1] == "8999"
    assert cmd[cmd.index("--browser.gatherUsageStats") + 1] == "false"
    assert env["CURATE_UI_READ_ONLY"] == "1" and json.loads(env["CURATE_UI_LAKES"]) == [str(demo_lake)]
    with pytest.raises(NotALakeError):
        ui_command([str(tmp_path / "nothing")])


def test_the_ui_reads_lake_uris_whole_from_its_environment() -> None:
    from app.state import parse_lakes

    assert parse_lakes(json.dumps(["s3://team/lake", "/data/lake:v2"])) == ("s3://team/lake", "/data/lake:v2")
    assert parse_lakes("s3://team/lake") == ("s3://team/lake",)  # set by hand: one lake, never split on ":"


def test_curate_ui_refuses_a_public_host_without_users(demo_lake: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "curate", "ui", "--lake", str(demo_lake), "--host", "0.0.0.0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "requires logins" in proc.stderr and "Traceback" not in proc.stderr


def test_a_read_only_lake_refuses_writes_from_the_ui_service(demo_lake: Path) -> None:
    from curate import ui_service as ui
    from curate.errors import ReadOnlyError
    from curate.lake import Lake

    lake = Lake(demo_lake, read_only=True)
    eid = lake.page(None, limit=1)[1]["episode_id"][0]
    with pytest.raises(ReadOnlyError):
        ui.save_labels(lake, eid, {"instruction": "x"}, author="a", seen=None)
    with pytest.raises(ReadOnlyError):
        ui.bulk_relabel(lake, [eid], action="add_tag", field="tags", value="x", author="a")
