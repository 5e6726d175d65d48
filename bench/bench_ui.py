"""UI benchmark: first render of Browse and a filter change on a synthetic lake (default 1M episodes).

    .venv/bin/python bench/bench_ui.py --episodes 1000000 --out /tmp/curate-bench-ui [--keep]

Builds the lake with bench_lake's column-wise generator (metadata only: no steps or frames, so thumbnails are
timed separately on a demo lake), then times, median of --repeat runs:

- the engine calls Browse makes (`ui_service.facets`, `ui_service.browse_page` for page 1 and for a filter);
- the whole Browse script under Streamlit's AppTest: a first run with empty caches (after one warm-up run that
  pays the server process's one-off imports, printed separately) and a rerun after a facet change
  (server-side time to produce the page; the browser's own paint is not included);
- one keyframe thumbnail (decode + resize) on a 40-episode demo lake.

Goals from the issue: first render < 2 s, filter change < 1 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_lake import episode_chunk  # noqa: E402

from curate import ui_service as ui  # noqa: E402
from curate.lake import EPISODES, Lake  # noqa: E402


def median_s(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def build(out: Path, episodes: int, chunk: int) -> None:
    shutil.rmtree(out, ignore_errors=True)
    lake = Lake.create(out)
    rng = np.random.default_rng(42)
    t0 = time.perf_counter()
    for start in range(0, episodes, chunk):
        n = min(chunk, episodes - start)
        lake._append(EPISODES, episode_chunk(start, n, 20, rng))
        print(f"  wrote {start + n:>9,} episodes", flush=True)
    lake.optimize()
    print(f"built {episodes:,} episodes in {time.perf_counter() - t0:.1f}s")


def apptest_browse(lake_uri: str, repeat: int) -> tuple[float, float]:
    """(cold first run, rerun after a facet change) of Browse through the router, median seconds."""
    from streamlit.testing.v1 import AppTest

    os.environ["CURATE_UI_LAKES"] = lake_uri
    os.environ["CURATE_UI_READ_ONLY"] = "1"
    first, change = [], []
    warm = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=600)
    warm.switch_page("views/overview.py")
    t0 = time.perf_counter()
    warm.run()  # the server process's one-off imports (streamlit elements, altair, pandas)
    print(f"one-off imports of a fresh server process: {time.perf_counter() - t0:.1f}s (not counted below)")
    for i in range(repeat):
        at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=600)
        at.switch_page("views/browse.py")
        t0 = time.perf_counter()
        at.run()
        first.append(time.perf_counter() - t0)
        assert not at.exception, [e.value for e in at.exception]
        options = at.multiselect(key="f_dataset").options
        at.multiselect(key="f_dataset").set_value([options[i % len(options)].split(" (")[0]])
        t0 = time.perf_counter()
        at.run()
        change.append(time.perf_counter() - t0)
        assert not at.exception, [e.value for e in at.exception]
    return statistics.median(first), statistics.median(change)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=100_000)
    parser.add_argument("--out", default="/tmp/curate-bench-ui")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="Reuse an existing lake at --out.")
    args = parser.parse_args()

    out = Path(args.out)
    if not args.keep or not out.exists():
        build(out, args.episodes, args.chunk)
    lake = Lake(out, read_only=True)
    n = lake.count()
    where = ui.facet_filter(ui.FacetSelection(datasets=["bridge"], success="success"))
    rows = [
        ("facets (sidebar values + counts)", median_s(lambda: ui.facets(lake), args.repeat)),
        ("browse_page page 1, no filter", median_s(lambda: ui.browse_page(lake, None, page=0), args.repeat)),
        ("browse_page page 1000, no filter", median_s(lambda: ui.browse_page(lake, None, page=999), args.repeat)),
        (f"browse_page with a filter [{where}]", median_s(lambda: ui.browse_page(lake, where), args.repeat)),
    ]
    first, change = apptest_browse(str(out), args.repeat)
    rows += [("Browse first render (AppTest, cold caches)", first),
             ("Browse rerun after a facet change (AppTest)", change)]

    from curate.demo import build_demo

    with tempfile.TemporaryDirectory() as tmp:
        build_demo(f"{tmp}/demo", episodes=40)
        demo = Lake(f"{tmp}/demo", read_only=True)
        page = ui.browse_page(demo, None, page_size=24)

        def thumbs() -> None:
            for row in page.rows:
                step, camera = ui.keyframe(row)
                if camera:
                    ui.thumbnail_jpeg(demo, row["episode_id"], step=step, camera=camera)

        per_page = median_s(thumbs, args.repeat)
    rows.append(("24 keyframe thumbnails, uncached (demo lake)", per_page))

    print(f"lake: {out}  episodes={n:,}  repeat={args.repeat}  cpus={os.cpu_count()}")
    goals = {"Browse first render (AppTest, cold caches)": 2.0, "Browse rerun after a facet change (AppTest)": 1.0}
    for name, seconds in rows:
        goal = goals.get(name)
        verdict = "" if goal is None else f"  (goal < {goal:g} s: {'met' if seconds < goal else 'MISSED'})"
        print(f"{name:<62} {seconds * 1000:>9.1f} ms{verdict}")


if __name__ == "__main__":
    main()
