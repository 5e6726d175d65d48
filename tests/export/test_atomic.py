"""Exports are atomic: nothing at the target until complete; replacing needs overwrite; a killed export
leaves no target."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from curate.export import ExportError, export
from curate.mixtures import save_manifest
from schemas.mixture import Manifest
from tests.helpers import run_cli


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".partial-" in p.name or ".old-" in p.name)


def test_an_existing_export_is_not_replaced_without_overwrite(natural: Manifest, tmp_path: Path) -> None:
    out = tmp_path / "pq"
    export(natural, format="parquet", out=out)
    before = (out / "manifest.json").read_bytes()
    with pytest.raises(ExportError, match="--overwrite"):
        export(natural, format="parquet", out=out)
    assert (out / "manifest.json").read_bytes() == before
    export(natural, format="lerobot", out=out, overwrite="replace", cameras="image")
    assert (out / "bridge" / "meta" / "info.json").exists() and not (out / "episodes.parquet").exists()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("fmt", ["parquet", "lerobot", "rlds"])
def test_an_export_that_fails_midway_leaves_nothing(natural: Manifest, tmp_path: Path, fmt: str) -> None:
    def boom(stage: str, done: int, total: int) -> None:
        if done == 3:
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        export(natural, format=fmt, out=tmp_path / "out", progress=boom)  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()
    assert leftovers(tmp_path) == []


KILL_SCRIPT = """
import sys, time
from pathlib import Path
from curate.export import export
from curate.mixtures import load_manifest

def slow(stage, done, total):
    if done == 2:
        Path(sys.argv[3]).write_text("halfway")
        time.sleep(60)

export(load_manifest(sys.argv[1]), format="parquet", out=sys.argv[2], progress=slow)
"""


def test_a_killed_export_leaves_no_target(natural: Manifest, tmp_path: Path) -> None:
    manifest = save_manifest(natural, tmp_path / "m.json")
    marker = tmp_path / "halfway"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(manifest), str(tmp_path / "out"), str(marker)],
                            cwd=Path(__file__).resolve().parents[2], env={**os.environ})
    try:
        for _ in range(600):
            if marker.exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert marker.exists(), "the export never reached its second episode"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (tmp_path / "out").exists()
    assert any(".out.partial-" in p for p in leftovers(tmp_path))  # the hidden temp dir, never the target


def test_cli_export_refuses_to_replace_then_overwrites(natural: Manifest, tmp_path: Path) -> None:
    manifest = save_manifest(natural, tmp_path / "m.json")
    out = tmp_path / "out"
    first = run_cli("export", str(manifest), "--format", "parquet", "--out", str(out), "--json")
    assert first.returncode == 0, first.stderr
    again = run_cli("export", str(manifest), "--format", "parquet", "--out", str(out))
    assert again.returncode == 2 and "--overwrite" in again.stderr and "Traceback" not in again.stderr
    forced = run_cli("export", str(manifest), "--format", "rlds", "--out", str(out), "--overwrite")
    assert forced.returncode == 0, forced.stderr
    assert (out / "bridge" / "1.0.0" / "dataset_info.json").exists()
