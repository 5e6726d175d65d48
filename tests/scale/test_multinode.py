"""A real two-node Ray cluster on this machine (`ray start --head` + `ray start --address`), joined with `--address`.

The second node is a separate raylet with its own object store, so tasks and their results cross nodes as on a
cluster. With the lake on S3 (a moto server), `curate ingest/embed --engine ray --address` give the local engine's
result. A node started in its own mount namespace, with an empty tmpfs over the sources' directory, cannot see a
local path: the run refuses before any task, naming the node and the path.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from curate.lake import Lake
from tests.helpers import run_cli
from tests.scale.conftest import S3Endpoint, _free_port

pytestmark = pytest.mark.ray
REPO = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))


@dataclass
class Cluster:
    address: str
    env: dict[str, str]


def _start_node(args: list[str], env: dict[str, str], log: Path, *, hide: Path | None = None) -> subprocess.Popen:
    """`ray start ... --block` in its own process group (so the test can stop exactly this node and its workers).

    With `hide`, the node runs in a new mount namespace with an empty tmpfs mounted over that directory.
    """
    cmd = [RAY, "start", *args, "--block", "--num-cpus", "1", "--node-ip-address", "127.0.0.1",
           "--disable-usage-stats"]
    if hide is not None:
        cmd = ["unshare", "-m", "sh", "-c", f'mount -t tmpfs tmpfs "{hide}" && exec "$@"', "sh", *cmd]
    with log.open("w") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=20)
            return
        except subprocess.TimeoutExpired:
            continue


def _wait_for_nodes(address: str, env: dict[str, str], n: int, logs: list[Path]) -> None:
    probe = ("import sys, time, ray; ray.init(address=sys.argv[1], log_to_driver=False)\n"
             "for _ in range(120):\n"
             "    if sum(x['Alive'] for x in ray.nodes()) >= int(sys.argv[2]): sys.exit(0)\n"
             "    time.sleep(0.5)\n"
             "sys.exit(1)\n")
    done = subprocess.run([sys.executable, "-c", probe, address, str(n)], env=env, capture_output=True, text=True,
                          timeout=180)
    if done.returncode != 0:
        raise AssertionError(f"the {n}-node Ray cluster did not come up: {done.stderr[-1500:]}\n" +
                             "\n".join(p.read_text()[-1500:] for p in logs if p.exists()))


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A head node and a worker node (1 CPU each); the worker hides `request.param` when given."""
    if not Path(RAY).exists():
        pytest.skip("the Ray engine needs ray[data] (the `ray` command)")
    hide = getattr(request, "param", None)
    if hide:
        (tmp_path / hide).mkdir()  # the mount point; what is written there later only the other nodes see
    port = _free_port()
    address = f"127.0.0.1:{port}"
    temp = Path(f"/tmp/rc{port}")  # short: Ray's socket paths must fit in 107 characters
    # Ray >= 2.59 turns on token authentication for a cluster started on this machine: every node and every driver
    # then needs the same token, as on a real cluster (docs/scaling.md)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(REPO), "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    logs = [tmp_path / "head.log", tmp_path / "worker.log"]
    head = _start_node(["--head", "--port", str(port), "--include-dashboard", "false", "--temp-dir", str(temp)],
                       env, logs[0])
    nodes = [head]
    try:
        _wait_for_nodes(address, env, 1, logs)
        nodes.append(_start_node(["--address", address], env, logs[1], hide=tmp_path / hide if hide else None))
        _wait_for_nodes(address, env, 2, logs)
        yield Cluster(address=address, env=env)
    finally:
        for proc in reversed(nodes):
            _stop(proc)
        subprocess.run(["rm", "-rf", str(temp)], check=False)


@pytest.fixture
def lerobot_source(tmp_path: Path) -> str:
    """A LeRobot v2.1 dataset of 6 episodes (JPEG frames) under tmp_path/src: one work unit per episode."""
    from curate.demo import write_lerobot
    from curate.demo.world import build_world

    demos = build_world(30, seed=3)
    robot = demos[0].robot.name
    root = tmp_path / "src" / "lerobot"
    write_lerobot.write([d for d in demos if d.robot.name == robot][:6], root, version="v2.1", visual="image")
    return str(root)


def test_ingest_and_embed_on_a_two_node_cluster_match_the_local_engine(cluster: Cluster, s3: S3Endpoint,
                                                                        lerobot_source: str, tmp_path: Path) -> None:
    from curate.models import TINY_ARCH, make_random_checkpoint

    env = {**cluster.env, **s3.env}
    lake = s3.uri("cluster-lake")
    on_ray = run_cli("ingest", lerobot_source, "--lake", lake, "--engine", "ray", "--address", cluster.address,
                     "--json", env=env)
    assert on_ray.returncode == 0, on_ray.stdout[-2000:] + on_ray.stderr[-2000:]
    local = run_cli("ingest", lerobot_source, "--lake", str(tmp_path / "local"), "--json")
    assert json.loads(on_ray.stdout)["totals"] == json.loads(local.stdout)["totals"]

    ckpt = make_random_checkpoint(tmp_path / "tiny.pt", arch=TINY_ARCH)
    embed = ["--model", TINY_ARCH, "--pretrained", str(ckpt), "--json"]
    done = run_cli("embed", "--lake", lake, "--engine", "ray", "--address", cluster.address, *embed, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert json.loads(done.stdout)["embed"]["episodes_embedded"] == 6
    assert run_cli("embed", "--lake", str(tmp_path / "local"), *embed).returncode == 0

    from curate.embed import load_vectors

    for key, value in s3.env.items():
        os.environ[key] = value  # the s3 fixture's monkeypatch restores them
    remote_rows, remote = load_vectors(Lake(lake, read_only=True), kind="episode")
    local_rows, here = load_vectors(Lake(tmp_path / "local", read_only=True), kind="episode")
    assert Lake(lake, read_only=True).episodes().sort("episode_id")["episode_id"].to_list() == \
        Lake(tmp_path / "local").episodes().sort("episode_id")["episode_id"].to_list()
    order_r = np.argsort(remote_rows["episode_id"].to_numpy())
    order_l = np.argsort(local_rows["episode_id"].to_numpy())
    np.testing.assert_allclose(remote[order_r], here[order_l], atol=1e-5)


@pytest.mark.parametrize("cluster", ["src"], indirect=True)
def test_a_node_that_cannot_see_a_local_source_stops_the_run_before_any_task(cluster: Cluster, lerobot_source: str,
                                                                             tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    done = run_cli("ingest", lerobot_source, "--lake", str(lake), "--engine", "ray", "--address", cluster.address,
                   env=cluster.env)
    assert done.returncode != 0
    message = done.stderr
    assert "cannot see" in message and lerobot_source in message and "127.0.0.1:" in message, message[-2000:]
    assert "s3://" in message  # says what to do
    assert Lake(lake, read_only=True).count() == 0  # nothing was written
