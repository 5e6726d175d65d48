"""Scale benchmark: ingest local vs Ray, embedding, lake size, memory, and ls / search / audit latency.

    .venv/bin/python bench/bench_scale.py --episodes 10000 --per-shard 500 --work /tmp/bench-scale  # full corpus
    .venv/bin/python bench/bench_scale.py --episodes 1000 --engines local-1 ray-2 --embed local ray  # quicker
    .venv/bin/python bench/corpus.py rlds --episodes 1000000 --steps 10 --per-shard 2000 --out /tmp/c1m
    .venv/bin/python bench/bench_scale.py --corpus /tmp/c1m/bridge_dataset/1.0.0 --engines local-2  # a given corpus
    .venv/bin/python bench/bench_scale.py --lake /tmp/bench-scale/lake-local-2 --embed ray  # later steps only
    .venv/bin/python bench/bench_scale.py --metadata-only 100000 1000000 --work /tmp/bench-meta     # rows only

Corpus runs (`--episodes N`, or `--corpus DIR` for one written beforehand with bench/corpus.py) use an RLDS corpus
in the OXE bridge layout (one ingest unit per shard of `--per-shard` episodes), then print for that size:
- per engine in `--engines` (local-N: the local engine with N worker processes; ray-N: Ray Data with N CPUs):
  ingest throughput (episodes/s, steps/s; CPU seconds for the local engine), a re-ingest of the same source (every
  episode unchanged), lake size on disk per episode and table, and for Ray its start-up and per-task overhead (the
  same Ray pipeline over no-op tasks, per task);
- the peak RSS of this process and of its child processes;
- with `--embed`, embedding throughput of the local engine and the Ray engine over the first engine's lake
  (curate-tiny, random weights saved to a file: the model is not the point; decode + batching + writes are);
- `curate ls` (first page of 50 under a filter), count, `curate search` (text) and `curate audit` latency.

Metadata-only runs (`--metadata-only N...`) write N episode rows (no steps or frames, as bench/bench_lake.py does)
and time `ls`, count and `stats`: what stays on one machine at a million episodes.
Ray runs inside the offline namespace like the tests: `unshare -rn sh -c 'ip link set lo up; exec ...'`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.corpus import write_rlds
from curate.lake import Lake

WHERE = 'instruction ~ "cup"'


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def median_s(fn: Any, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _rss_by_pid() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, resident bytes) of every process, from /proc (Linux)."""
    out = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            out[int(entry)] = (int(fields[1]), int(fields[21]) * page)  # ppid, rss (pages)
        except (OSError, IndexError, ValueError):  # the process ended while we looked
            continue
    return out


class MemorySampler:
    """Peak resident memory of this process and of every process it started (local workers, the fork server, Ray's
    raylet and workers), sampled twice a second on a thread: `getrusage` cannot see grandchildren."""

    def __init__(self, interval_s: float = 0.5) -> None:
        self.interval_s = interval_s
        self.peak_self = self.peak_other = self.peak_total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        me = os.getpid()
        procs = _rss_by_pid()
        tree = {me}
        for _ in range(6):  # descendants, a few generations down
            tree |= {pid for pid, (ppid, _) in procs.items() if ppid in tree}
        others = [procs[pid][1] for pid in tree - {me} if pid in procs]
        own = procs.get(me, (0, 0))[1]
        self.peak_self = max(self.peak_self, own)
        self.peak_other = max(self.peak_other, max(others, default=0))
        self.peak_total = max(self.peak_total, own + sum(others))

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()  # a step shorter than the interval still gets one sample

    def figures(self) -> dict[str, float]:
        mb = 1024 * 1024
        return {"self_mb": round(self.peak_self / mb, 1), "largest_other_process_mb": round(self.peak_other / mb, 1),
                "whole_tree_mb": round(self.peak_total / mb, 1)}


def ray_task_overhead(units: int) -> float:
    """Seconds per task of the same Ray Data pipeline shape over no-op tasks (one block per unit)."""
    import ray.data

    ds = ray.data.from_items([{"index": i} for i in range(units)], override_num_blocks=units)
    t0 = time.perf_counter()
    list(ds.map_batches(lambda b: b, batch_size=1, num_cpus=1).iter_rows())
    return (time.perf_counter() - t0) / units


def _cpu_s() -> float:
    """CPU seconds of this process and of the child processes it has waited for (local worker processes)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _throughput(report: Any, cpu: float | None = None) -> dict[str, Any]:
    row = {"episodes_per_s": round(report.episodes / report.seconds, 1),
           "steps_per_s": round(report.steps / report.seconds, 1), "seconds": round(report.seconds, 2),
           "units": report.units, "episodes": report.episodes, "steps": report.steps}
    if cpu is not None:
        row["cpu_s"] = round(cpu, 1)
    return row


def bench_ingest(source: str, work: Path, engines: list[str], *, reingest: bool = True,
                 ) -> tuple[dict[str, Any], Path | None]:
    """Ingest `source` once per engine ("local-N": N worker processes; "ray-N": Ray with N CPUs) into a fresh lake.

    Returns the figures and the first lake written (the one the query benchmarks use).
    """
    from curate.distributed import ingest_ray, ray_session
    from curate.ingest import ingest

    out: dict[str, Any] = {}
    first: Path | None = None
    for engine in engines:
        kind, _, n = engine.partition("-")
        lake = work / f"lake-{engine}"
        shutil.rmtree(lake, ignore_errors=True)
        first = first or lake
        with MemorySampler() as memory:
            if kind == "local":
                cpu = _cpu_s()
                report = ingest(source, lake=str(lake), workers=int(n))
                # with worker processes their CPU is not visible here (children of the fork server, not ours)
                row = _throughput(report, _cpu_s() - cpu if n == "1" else None)
                again = ingest(source, lake=str(lake), workers=int(n)) if reingest else None
            elif kind == "ray":
                t0 = time.perf_counter()
                with ray_session(None, num_cpus=int(n)):  # started once, outside the timed ingest
                    startup = time.perf_counter() - t0
                    report = ingest_ray(source, lake=str(lake))
                    row = {**_throughput(report), "ray_startup_s": round(startup, 1)}
                    again = ingest_ray(source, lake=str(lake)) if reingest else None
                    row["overhead_s_per_task"] = round(ray_task_overhead(report.units), 4)
            else:
                raise SystemExit(f"unknown engine {engine!r}: use local-N or ray-N")
        row["peak_memory"] = memory.figures()
        if again is not None:
            row["reingest_unchanged"] = again.unchanged
            row["reingest_seconds"] = round(again.seconds, 2)
        row["lake_bytes_per_episode"] = tables_bytes_per_episode(lake, report.episodes)
        out[engine] = row
        print("ingest", engine, row, flush=True)
    return out, first


def tables_bytes_per_episode(lake: Path, episodes: int) -> dict[str, float]:
    """Bytes on disk per episode, per table (every version kept; see docs/performance.md)."""
    sizes = {p.name.removesuffix(".lance"): du(p) for p in sorted(lake.glob("*.lance"))}
    return {name: round(size / max(episodes, 1), 1) for name, size in sizes.items()} | {
        "total": round(du(lake) / max(episodes, 1), 1)}


def bench_embed(lake_dir: Path, work: Path, ray_cpus: int, engines: list[str]) -> dict[str, Any]:
    from curate.distributed import embed_ray, ray_session
    from curate.embed import embed_lake
    from curate.models import TINY_ARCH, load_model, make_random_checkpoint

    ckpt = make_random_checkpoint(work / "tiny.pt")
    model = load_model(TINY_ARCH, str(ckpt), device="cpu")
    out: dict[str, Any] = {}
    for i, engine in enumerate(engines):
        target = lake_dir  # the first engine embeds the lake itself (the query benchmarks then use its vectors)
        if i:
            target = work / f"lake-embed-{engine}"
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(lake_dir, target, ignore=shutil.ignore_patterns("vectors*", "derived*", "embeddings.json"))
        with MemorySampler() as memory:
            if engine == "local":
                t0 = time.perf_counter()
                report = embed_lake(Lake(target), model=model, batch=64)
                seconds = time.perf_counter() - t0
            else:
                with ray_session(None, num_cpus=ray_cpus):  # startup not timed, as for ingest
                    t0 = time.perf_counter()
                    report = embed_ray(Lake(target), model=model, batch=64)
                    seconds = time.perf_counter() - t0
        out[engine] = {"episodes": report.episodes_embedded, "images": report.images,
                       "episodes_per_s": round(report.episodes_embedded / seconds, 1),
                       "images_per_s_end_to_end": round(report.images / seconds, 1), "seconds": round(seconds, 2),
                       "peak_memory": memory.figures()}
        print("embed", engine, out[engine], flush=True)
    return out


def bench_queries(lake_dir: Path) -> dict[str, Any]:
    """ls / count / text search latency (medians of 5), the first search of the process (query model and index
    loaded), and one audit with the seconds of each of its phases and its peak memory."""
    from curate.analytics import run_audit
    from curate.search import search

    lake = Lake(lake_dir, read_only=True)
    first_page = median_s(lambda: lake.refresh().page(WHERE, limit=50, offset=0))
    out: dict[str, Any] = {"ls_first_page_s": round(first_page, 4),
                           "count_s": round(median_s(lambda: lake.refresh().count(WHERE)), 4)}
    try:
        t0 = time.perf_counter()
        search(lake, "put the cup in the bowl", k=10)
        out["search_first_s"] = round(time.perf_counter() - t0, 3)
        out["search_text_s"] = round(median_s(lambda: search(lake, "put the cup in the bowl", k=10)), 4)
        out["search_text_filtered_s"] = round(median_s(
            lambda: search(lake, "put the cup in the bowl", k=10, where=WHERE)), 4)
        marks: list[tuple[str, float]] = []
        with MemorySampler() as memory:
            t0 = time.perf_counter()
            run_audit(lake, progress=lambda name, i, n: marks.append((name, time.perf_counter())))
            out["audit_s"] = round(time.perf_counter() - t0, 2)
        out["audit_phases_s"] = {name.removeprefix("audit: "): round(marks[i + 1][1] - at, 2)
                                 for i, (name, at) in enumerate(marks[:-1])}
        out["audit_peak_memory"] = memory.figures()
    except Exception as exc:  # a lake without vectors: report it instead of a number
        out["search_audit"] = f"not measured: {type(exc).__name__}: {exc}"
    return out


def bench_metadata(n: int, work: Path) -> dict[str, Any]:
    """N episode rows only, written through the lake's own schema and commit path, then ls / count / stats."""
    import numpy as np

    from bench.bench_lake import episode_chunk
    from curate.lake import EPISODES

    path = work / f"meta-{n}"
    shutil.rmtree(path, ignore_errors=True)
    lake = Lake.create(path)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    chunk = 100_000
    for start in range(0, n, chunk):
        lake._append(EPISODES, episode_chunk(start, min(chunk, n - start), 50, rng))
    write_s = time.perf_counter() - t0
    lake = Lake(path, read_only=True)
    out = {"episodes": n, "write_s": round(write_s, 1), "bytes_per_episode": round(du(path) / n, 1),
           "ls_first_page_s": round(median_s(lambda: lake.refresh().page(WHERE, limit=50)), 4),
           "count_s": round(median_s(lambda: lake.refresh().count(WHERE)), 4),
           "stats_s": round(median_s(lambda: lake.refresh().stats(), repeat=3), 4)}
    print("metadata-only", out, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=0, help="corpus size (RLDS episodes with frames)")
    parser.add_argument("--corpus", help="use this RLDS dataset directory instead of writing one (--episodes ignored)")
    parser.add_argument("--per-shard", type=int, default=100)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--engines", nargs="*", default=["local-1", "local-2", "ray-1", "ray-2"],
                        help="ingest engines to time: local-N (N worker processes), ray-N (Ray with N CPUs)")
    parser.add_argument("--ray-cpus", type=int, default=2, help="CPUs of the Ray session for the embed benchmark")
    parser.add_argument("--embed", nargs="*", choices=("local", "ray"), default=[],
                        help="also embed the first engine's lake with these engines (then query that lake)")
    parser.add_argument("--no-reingest", dest="reingest", action="store_false",
                        help="skip the second ingest of the same source (every episode unchanged)")
    parser.add_argument("--lake", help="embed and query this existing lake (no corpus, no ingest): to re-run the "
                        "later steps of a large run")
    parser.add_argument("--metadata-only", type=int, nargs="*", default=[])
    parser.add_argument("--work", default="/tmp/bench-scale")
    parser.add_argument("--json", dest="json_path", help="also write the figures here")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"cpus": os.cpu_count()}
    source = args.corpus
    if args.episodes and not source:
        t0 = time.perf_counter()
        source = write_rlds(args.episodes, work / "corpus", steps=args.steps, episodes_per_shard=args.per_shard)
        results["corpus"] = {"episodes": args.episodes, "write_s": round(time.perf_counter() - t0, 1)}
    lake_dir = Path(args.lake) if args.lake else None
    if source and lake_dir is None:
        results.setdefault("corpus", {})["bytes"] = du(Path(source))
        print("corpus", source, results["corpus"], flush=True)
        results["ingest"], lake_dir = bench_ingest(source, work, args.engines, reingest=args.reingest)
    if lake_dir is not None:
        if args.embed:
            results["embed"] = bench_embed(lake_dir, work, args.ray_cpus, args.embed)
        results["queries"] = bench_queries(lake_dir)
        print("queries", results["queries"], flush=True)
    if args.metadata_only:
        results["metadata_only"] = [bench_metadata(n, work) for n in args.metadata_only]
    results["peak_rss_self_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(results, indent=2))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
