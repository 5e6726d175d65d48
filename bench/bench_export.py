"""Export throughput next to copying the same bytes.

    .venv/bin/python bench/bench_export.py --episodes 200 --runs 3

Builds a demo lake (JPEG frames, nothing needs re-encoding), resolves a natural mixture over it, then for
each format without re-encoding (parquet, rlds, lerobot with cameras="image") times the export and a plain
copy of the export's output directory (the same bytes, read and written once). Prints frames/s, MB/s and
export speed as a share of copy speed (the goal is at least 50%). LeRobot with H.264 encoding is timed too,
for reference (it re-encodes every frame). Medians over --runs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curate.demo import build_demo
from curate.export import export
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


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def copy_tree(src: Path, dst: Path) -> None:
    """Read every file and write it again (no reflinks or sendfile shortcuts)."""
    for p in src.rglob("*"):
        target = dst / p.relative_to(src)
        if p.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(p.read_bytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lake", help="use this lake instead of building a demo lake")
    parser.add_argument("--synthetic", type=int, default=0, metavar="SIZE",
                        help="build a lake of SIZE x SIZE noisy JPEG frames (50 steps per episode) instead")
    parser.add_argument("--formats", default="parquet,rlds,lerobot-image,lerobot-video")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_export_"))
    try:
        if args.lake:
            lake = Lake(args.lake)
        elif args.synthetic:
            lake = synthetic_lake(work / "lake", episodes=args.episodes, steps=50, size=args.synthetic)
        else:
            build_demo(str(work / "lake"), episodes=args.episodes, seed=1)
            lake = Lake(str(work / "lake"))
        manifest = resolve(MixtureSpec(name="bench", quality=[]), lake)
        print(f"lake: {lake.uri} version {lake.version}; mixture: {manifest.selected_episodes} episodes, "
              f"{sum(e.repeats * e.units for e in manifest.episodes):.0f} episodes' worth")
        rows = []
        for fmt in args.formats.split(","):
            name, _, cams = fmt.partition("-")
            options = {"cameras": cams} if name == "lerobot" else {}
            export_s, copy_s = [], []
            result = None
            for run in range(args.runs):
                out = work / f"{fmt}-{run}"
                t = time.perf_counter()
                result = export(manifest, format=name, out=out, lake=lake, **options)  # type: ignore[arg-type]
                export_s.append(time.perf_counter() - t)
                t = time.perf_counter()
                copy_tree(out, work / f"{fmt}-{run}-copy")
                copy_s.append(time.perf_counter() - t)
                shutil.rmtree(work / f"{fmt}-{run}-copy")
                if run:
                    shutil.rmtree(out)
            assert result is not None
            size = dir_bytes(work / f"{fmt}-0")
            e, c = statistics.median(export_s), statistics.median(copy_s)
            rows.append({"format": fmt, "frames": result.frames, "reencoded": result.frames_reencoded,
                         "MB": round(size / 1e6, 2), "export_s": round(e, 3), "copy_s": round(c, 3),
                         "export_frames_per_s": round(result.frames / e), "export_MB_per_s": round(size / 1e6 / e, 1),
                         "copy_MB_per_s": round(size / 1e6 / c, 1), "export_vs_copy": round(c / e, 3)})
        header = f"{'format':<15}{'frames':>8}{'reenc':>7}{'MB':>8}{'export s':>10}{'frames/s':>10}" \
                 f"{'MB/s':>8}{'copy MB/s':>11}{'vs copy':>9}"
        print(header)
        for r in rows:
            print(f"{r['format']:<15}{r['frames']:>8}{r['reencoded']:>7}{r['MB']:>8}{r['export_s']:>10}"
                  f"{r['export_frames_per_s']:>10}{r['export_MB_per_s']:>8}{r['copy_MB_per_s']:>11}"
                  f"{r['export_vs_copy']:>9.1%}")
        print(json.dumps(rows))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
