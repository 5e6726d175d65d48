"""The embed / search / audit commands, end to end through the CLI entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ENV = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}


def _curate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "curate", *args], capture_output=True, text=True, env=ENV,
                          cwd=Path(__file__).resolve().parents[2], timeout=600)


def test_embed_search_and_audit_commands(demo_lake: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    done = _curate("embed", "--lake", str(demo_lake), "--pretrained", str(tiny_checkpoint), "--device", "cpu",
                   "--batch", "16", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["embed"]["episodes_embedded"] > 0 and out["derive"]["episodes"] > 0
    found = _curate("search", "red cube", "--lake", str(demo_lake), "--k", "3", "--json")
    assert found.returncode == 0, found.stderr
    assert len(json.loads(found.stdout)["results"]) == 3
    report = tmp_path / "report.html"
    audited = _curate("audit", "--lake", str(demo_lake), "--out", str(report), "--json", str(tmp_path / "m.json"),
                      "--reference", 'split != "deploy"', "--target", 'split == "deploy"')
    assert audited.returncode == 0, audited.stderr
    assert report.exists() and "shift" in json.loads((tmp_path / "m.json").read_text())


def test_offline_embed_without_weights_fails_fast_with_a_fix(demo_lake: Path) -> None:
    done = _curate("embed", "--lake", str(demo_lake))
    assert done.returncode == 8
    assert "HF_HUB_OFFLINE" in done.stderr and "--pretrained" in done.stderr
