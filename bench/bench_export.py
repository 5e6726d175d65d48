"""Export throughput next to copying the same bytes.

    flock /tmp/bench.lock .venv/bin/python bench/bench_export.py --synthetic 256 --episodes 200 --runs 3

Builds a lake (by default the demo lake; with --synthetic SIZE, 50-step episodes of distinct SIZE x SIZE noisy
JPEG frames so that nothing needs re-encoding), resolves a natural mixture over it, then for each format times the
export and a plain copy of that export's output directory: `shutil.copytree` of the finished export into a fresh
directory on the same filesystem, i.e. every byte read once and written once (CPython copies each file with
`os.sendfile`, kernel to kernel, the fastest honest copy; neither side fsyncs). Both read warm page cache (the lake
and the export's output have just been read or written). Prints per format: frames, MB written, export wall and
CPU seconds, frames/s, MB/s, copy wall and CPU seconds, copy MB/s and export speed as a share of copy speed
(= copy seconds / export seconds; the goal is >= 50% for parquet, rlds and lerobot-image), and the seconds
sha256 takes over the output (every export checksums every file it writes, in a background thread). Before the
table: the seconds Lance takes to read every frame's bytes once, the floor of any export's read. LeRobot with H.264
encoding (lerobot-video) re-encodes every frame and is listed for reference only. Medians over --runs.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curate.demo import build_demo
from curate.export import export
from curate.export.common import sha256_file
from curate.lake import Lake
from curate.mixtures import resolve
from schemas.mixture import MixtureSpec


def synthetic_lake(path: Path, *, episodes: int, steps: int, size: int) -> Lake:
    """Episodes with one camera of size x size noisy JPEGs (~ camera-sized payloads), seeded."""
    import io

    import numpy as np
    from PIL import Image

    from schemas import Camera, Embodiment, Episode, Frame, Source, Space, Step, episode_id_for

    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (size * 2, size * 2, 3), dtype=np.uint8)

    def jpeg(i: int, t: int) -> bytes:
        """A distinct frame per step (a shifted crop), so no format can deduplicate payloads."""
        y, x = (i * 7 + t) % size, (i * 13 + t * 3) % size
        buf = io.BytesIO()
        Image.fromarray(base[y:y + size, x:x + size]).save(buf, format="JPEG", quality=85)
        return buf.getvalue()

    def make(i: int) -> Episode:
        key = f"bench/{i}"
        return Episode(
            episode_id=episode_id_for("bench", key), dataset="bench",
            source=Source(format="bench", uri="bench://", key=key, fingerprint=str(i)),
            embodiment=Embodiment(robot="franka"), action_space=Space(kind="eef_delta", dim=7),
            control_hz=10.0, instruction="pick up the cup", n_steps=steps, duration_s=steps / 10,
            cameras=[Camera(name="front", height=size, width=size)],
            steps=[Step(index=t, timestamp_s=t / 10, action=rng.normal(size=7).tolist(),
                        frames=[Frame(camera="front", format="jpeg", data=jpeg(i, t))]) for t in range(steps)])

    lake = Lake.create(path)
    lake.write_episodes(make(i) for i in range(episodes))
    lake.optimize()
    return lake


def with_frames_file_format(lake: Lake, dest: Path, version: str) -> Lake:
    """A copy of `lake` whose frames table is rewritten in Lance file format `version` (a what-if: the lake itself
    writes the default format, whose binary decoding bounds every export's read of frame bytes)."""
    import lance

    shutil.copytree(lake.uri, dest)
    copy = Lake(str(dest))
    frames = copy.table("frames")
    assert frames is not None
    table = frames.to_table()
    shutil.rmtree(copy.table_uri("frames"))
    ds = lance.write_dataset(table, copy.table_uri("frames"), schema=table.schema, data_storage_version=version)
    ds.create_scalar_index("episode_id", index_type="BTREE", replace=True)
    return Lake(str(dest))


def lance_read_seconds(lake: Lake) -> tuple[float, float, int]:
    """(wall, CPU, bytes) of reading every frame's bytes from the lake once: the floor of any export's read."""
    frames = lake.table("frames")
    assert frames is not None
    (table, wall, cpu) = timed(lambda: frames.to_table(columns=["data"]))
    return wall, cpu, table.nbytes  # type: ignore[union-attr]


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def cpu_seconds() -> float:
    """User + system CPU of this process and its waited-for children (the kernel's copy work is system time)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn: Callable[[], object]) -> tuple[object, float, float]:
    """(result, wall seconds, CPU seconds) of one call."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    out = fn()
    return out, time.perf_counter() - wall, cpu_seconds() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lake", help="use this lake instead of building one")
    parser.add_argument("--synthetic", type=int, default=0, metavar="SIZE",
                        help="build a lake of SIZE x SIZE noisy JPEG frames (50 steps per episode) instead of the demo")
    parser.add_argument("--keep-lake", metavar="DIR", help="build the lake at DIR and keep it (reuse with --lake)")
    parser.add_argument("--formats", default="parquet,rlds,lerobot-image,lerobot-video")
    parser.add_argument("--frames-file-format", metavar="VERSION",
                        help="what-if: export from a copy of the lake whose frames table is in this Lance file "
                             "format (e.g. 2.0) instead of the default the lake writes")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_export_"))
    try:
        lake_dir = Path(args.keep_lake) if args.keep_lake else work / "lake"
        if args.lake:
            lake = Lake(args.lake)
        elif args.synthetic:
            lake = synthetic_lake(lake_dir, episodes=args.episodes, steps=50, size=args.synthetic)
        else:
            build_demo(str(lake_dir), episodes=args.episodes, seed=1)
            lake = Lake(str(lake_dir))
        if args.frames_file_format:
            lake = with_frames_file_format(lake, work / "lake-frames", args.frames_file_format)
        frames_ds = lake.table("frames")
        wall, cpu, nbytes = lance_read_seconds(lake)
        print(f"frames table: Lance file format {frames_ds.data_storage_version if frames_ds else None}; reading "
              f"every frame's bytes once: {nbytes / 1e6:.0f} MB in {wall:.2f} s wall, {cpu:.2f} s CPU "
              f"({nbytes / 1e6 / wall:.0f} MB/s)")
        manifest = resolve(MixtureSpec(name="bench", quality=[]), lake)
        print(f"lake: {lake.uri} version {lake.version}; mixture: {manifest.selected_episodes} episodes, "
              f"{sum(e.repeats * e.units for e in manifest.episodes):.0f} episodes' worth; "
              "copy baseline: shutil.copytree of each export's output (sendfile, warm cache)")
        rows = []
        for fmt in args.formats.split(","):
            name, _, cams = fmt.partition("-")
            options = {"cameras": cams} if name == "lerobot" else {}
            export_s, export_cpu, copy_s, copy_cpu = [], [], [], []
            result = None
            for run in range(args.runs):
                out, dup = work / f"{fmt}-{run}", work / f"{fmt}-{run}-copy"
                result, wall, cpu = timed(lambda out=out, name=name, options=options: export(
                    manifest, format=name, out=out, lake=lake, **options))  # type: ignore[arg-type]
                export_s.append(wall)
                export_cpu.append(cpu)
                _, wall, cpu = timed(lambda out=out, dup=dup: shutil.copytree(out, dup))
                copy_s.append(wall)
                copy_cpu.append(cpu)
                shutil.rmtree(dup)
                if run:
                    shutil.rmtree(out)
            assert result is not None
            size = dir_bytes(work / f"{fmt}-0")
            files = [p for p in (work / f"{fmt}-0").rglob("*") if p.is_file()]
            _, hash_s, _ = timed(lambda files=files: [sha256_file(p) for p in files])
            shutil.rmtree(work / f"{fmt}-0")
            e, c = statistics.median(export_s), statistics.median(copy_s)
            rows.append({"format": fmt, "frames": result.frames, "reencoded": result.frames_reencoded,
                         "MB": round(size / 1e6, 1), "export_s": round(e, 2),
                         "export_cpu_s": round(statistics.median(export_cpu), 2),
                         "export_frames_per_s": round(result.frames / e), "export_MB_per_s": round(size / 1e6 / e),
                         "copy_s": round(c, 2), "copy_cpu_s": round(statistics.median(copy_cpu), 2),
                         "copy_MB_per_s": round(size / 1e6 / c), "export_vs_copy": round(c / e, 3),
                         "sha256_s": round(hash_s, 2)})
        header = (f"{'format':<15}{'frames':>8}{'reenc':>7}{'MB':>8}{'export s':>10}{'CPU s':>8}{'frames/s':>10}"
                  f"{'MB/s':>7}{'copy s':>8}{'CPU s':>7}{'copy MB/s':>10}{'vs copy':>9}{'sha256 s':>10}")
        print(header)
        for r in rows:
            print(f"{r['format']:<15}{r['frames']:>8}{r['reencoded']:>7}{r['MB']:>8}{r['export_s']:>10}"
                  f"{r['export_cpu_s']:>8}{r['export_frames_per_s']:>10}{r['export_MB_per_s']:>7}{r['copy_s']:>8}"
                  f"{r['copy_cpu_s']:>7}{r['copy_MB_per_s']:>10}{r['export_vs_copy']:>9.1%}{r['sha256_s']:>10}")
        print(json.dumps(rows))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
