"""A writer killed with SIGKILL at any point leaves the last committed version intact and whole."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from curate.doctor import check_lake
from curate.lake import Lake, vacuum
from tests.helpers import REPO

WRITER = textwrap.dedent("""
    import sys
    from curate.lake import Lake
    from tests.helpers import make_episode

    lake = Lake(sys.argv[1])
    start = int(sys.argv[2])

    def episodes():
        for i in range(start, start + 400):
            yield make_episode(i, n_steps=20, cameras=("front", "wrist"))

    def committed(result):
        print("committed", result.episodes, flush=True)

    lake.write_episodes(episodes(), batch_size=5, on_batch=committed)
""")


def _start_writer(lake_uri: str, start: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, lake_uri, str(start)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.mark.slow
@pytest.mark.parametrize("delay_s", [0.0, 0.15, 0.4, 0.9])
def test_killed_writer_leaves_previous_version_intact(tmp_path, delay_s):
    lake = Lake.create(tmp_path / "lake")
    proc = _start_writer(lake.uri, 0)
    assert proc.stdout is not None
    first = proc.stdout.readline()  # wait for one committed batch, then kill mid-stream
    assert first.startswith("committed"), proc.stderr.read() if proc.stderr else ""
    time.sleep(delay_s)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    survivor = Lake(lake.uri)
    n = survivor.count()
    assert n >= 5 and n % 5 == 0, "only whole batches are ever visible"
    report = check_lake(survivor)
    assert report.ok, report.to_dict()
    for eid in survivor.episodes(columns=["episode_id"])["episode_id"].to_list()[-5:]:
        episode = survivor.episode(eid, frames="eager")
        assert len(episode.steps) == 20
        assert all(len(step.frames) == 2 for step in episode.steps)

    # vacuum removes what the killed writer left uncommitted; nothing visible changes
    vacuum(survivor)
    assert Lake(lake.uri).count() == n
    assert not [f for f in check_lake(Lake(lake.uri)).findings if "interrupted" in f.message]


def test_a_write_that_fails_validation_commits_nothing_of_its_batch(lake):
    from tests.helpers import make_episode

    lake.write_episodes([make_episode(0)])
    version = lake.version

    def bad_stream():
        yield make_episode(1)
        raise RuntimeError("source broke mid-batch")

    with pytest.raises(RuntimeError):
        lake.write_episodes(bad_stream(), batch_size=10)
    assert lake.refresh().version == version
    assert lake.count() == 1
