"""End to end in a real browser: Debian's headless Chromium, driven by Playwright, against `curate ui`.

Open Browse, apply a filter, open an episode, move the step slider, relabel the instruction; then check the
change is in the lake and in the history. Screenshots go to test-artifacts/ui/.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from curate.cli.ui_cmd import free_port
from curate.lake import Lake

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path(os.environ.get("CURATE_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium (`apt-get install chromium`) to run the browser "
                "test; Playwright's own browser download is never used", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"curate ui exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"curate ui did not answer at {url} within {timeout}s")


@pytest.fixture
def served(demo_lake: Path, tmp_path: Path) -> Iterator[str]:
    """`curate ui` serving the demo lake on 127.0.0.1 and a free port; stopped at teardown."""
    port = free_port()
    log = (tmp_path / "ui.log").open("wb")
    env = {**os.environ, "USER": "browser-tester"}
    proc = subprocess.Popen([sys.executable, "-m", "curate", "ui", "--lake", str(demo_lake), "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


@pytest.fixture
def page(tmp_path: Path) -> Iterator[object]:
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000})
        try:
            yield context.new_page()
        finally:
            context.close()


def _settle(page, timeout_ms: int = 30_000) -> None:
    """Wait until Streamlit has finished the current run (no 'Running' indicator, no skeletons)."""
    page.wait_for_timeout(400)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]') "
        "&& !document.querySelector('[data-testid=\"stSkeleton\"]')", timeout=timeout_ms)
    page.wait_for_timeout(300)


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _no_exception(page) -> None:
    errors = page.locator("[data-testid='stException']")
    assert errors.count() == 0, errors.all_inner_texts()


def test_browse_filter_open_step_relabel_round_trip(served: str, page, demo_lake: Path) -> None:
    lake = Lake(demo_lake)
    where = 'dataset == "tabletop_franka"'
    expected_total = lake.count(where)

    page.goto(f"{served}/browse")
    page.get_by_text("episodes match").wait_for(timeout=60_000)
    _settle(page)
    _no_exception(page)
    assert page.get_by_text(f"{lake.count():,} episodes match").is_visible()
    assert page.locator("[data-testid='stImage'] img").count() >= 4
    _shot(page, "1-browse")

    box = page.get_by_label("Filter", exact=True)
    box.fill(where)
    box.press("Enter")
    page.get_by_text(f"{expected_total:,} episodes match").wait_for(timeout=30_000)
    _settle(page)
    _no_exception(page)
    badges = page.locator("[data-testid='stMarkdownContainer']").filter(has_text="tabletop_")
    assert all("tabletop_franka" in t for t in badges.all_inner_texts() if "steps" in t)
    _shot(page, "2-filtered")

    page.get_by_role("link", name=re.compile("Open")).first.click()
    page.wait_for_url(re.compile(r"[?&]episode=ep_"), timeout=30_000)
    page.get_by_text("Step", exact=True).wait_for(timeout=30_000)
    _settle(page)
    _no_exception(page)
    episode_id = re.search(r"episode=(ep_[A-Za-z0-9]+)", page.url).group(1)
    assert lake.episode(episode_id, steps=False).dataset == "tabletop_franka"

    slider = page.get_by_role("slider").first
    slider.focus()
    for _ in range(3):
        slider.press("ArrowRight")
    page.wait_for_url(re.compile(r"step=3"), timeout=30_000)
    _settle(page)
    assert page.locator("[data-testid='stSliderThumbValue']").first.inner_text() == "3"
    _no_exception(page)
    _shot(page, "3-episode-step3")

    new_text = "pick up the red cube and put it in the bowl (browser test)"
    field = page.get_by_label("Instruction", exact=True)
    field.scroll_into_view_if_needed()
    field.fill(new_text)
    page.get_by_role("button", name="Save labels").click()
    page.get_by_role("heading", name=new_text).wait_for(timeout=30_000)
    _settle(page)
    _no_exception(page)

    fresh = Lake(demo_lake)
    assert fresh.episode(episode_id, steps=False).instruction == new_text
    events = [e for e in fresh.label_events(episode_id=episode_id) if e.field == "instruction"]
    assert len(events) == 1
    assert events[0].value == new_text and events[0].author == "browser-tester"

    page.get_by_role("tab", name="History").click()
    history = page.locator("[data-testid='stDataFrame']").last
    history.wait_for(timeout=15_000)
    history.scroll_into_view_if_needed()
    _settle(page)
    _shot(page, "4-relabelled-history")
    assert page.get_by_text(f"curate history {episode_id}").is_visible()
    assert "step=3" in page.url
