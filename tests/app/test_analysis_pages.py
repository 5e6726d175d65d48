"""Coverage, semantic search and Mixtures pages with AppTest, on a demo lake embedded by a tiny local CLIP."""

from __future__ import annotations

from pathlib import Path

import pytest

from curate.analytics import coverage, language_audit, shift_audit
from curate.lake import Lake
from curate.mixtures import load_spec, resolve
from curate.search import search
from tests.app.apptest import open_page, table_with, texts

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mixtures" / "demo_balanced.yaml"


def _metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_coverage_without_vectors_says_to_run_curate_embed(ui_env: Path) -> None:
    at = open_page("views/coverage.py")
    assert any("curate embed" in w.value for w in at.warning)
    assert "Unique instructions" in _metrics(at)  # the language audit needs no vectors


def test_coverage_shows_the_audit_numbers(embedded_env: Path) -> None:
    lake = Lake(embedded_env)
    cov = coverage(lake)
    _, lang = language_audit(lake)
    at = open_page("views/coverage.py")
    metrics = _metrics(at)
    assert metrics["Episodes"] == f"{cov.summary['episodes']:,}"
    assert metrics["Clusters"] == str(cov.summary["k"])
    assert metrics["Tail share"] == f"{cov.summary['tail_share']:.1%}"
    assert metrics["Unique instructions"] == f"{lang['unique_instructions']:,}"


def test_coverage_shift_audit_between_two_filters(embedded_env: Path) -> None:
    audit = shift_audit(Lake(embedded_env), reference='dataset != "deploy_kitchen"',
                        target='dataset == "deploy_kitchen"')
    at = open_page("views/coverage.py")
    at.button(key="shift_run").click().run()
    assert not at.exception
    metrics = _metrics(at)
    assert metrics["Target covered"] == f"{audit.summary['target_covered_share']:.1%}"
    assert metrics["Fréchet distance"] == f"{audit.summary['frechet_distance']:.4f}"
    novel = table_with(at, "novelty")
    assert novel["episode_id"].tolist() == audit.target.head(50)["episode_id"].to_list()


def test_semantic_search_ranks_like_curate_search_within_the_filter(embedded_env: Path) -> None:
    lake = Lake(embedded_env)
    where = 'dataset in ["tabletop_franka"]'
    expected = search(lake, "a red cube on a plate", where=where, k=5)["episode_id"].to_list()
    at = open_page("views/browse.py")
    at.multiselect(key="f_dataset").set_value(["tabletop_franka"]).run()
    at.number_input(key="q_k").set_value(5)
    at.text_input(key="q_text").set_value("a red cube on a plate").run()
    assert not at.exception
    assert "**5** episodes match" in texts(at)
    shown = [cb.key.removeprefix("sel_") for cb in at.checkbox]
    assert shown == expected
    assert sum("score" in m.value for m in at.markdown) == 5


def test_an_oversized_or_fake_upload_is_refused(tmp_path: Path) -> None:
    from curate import ui_service as ui
    from curate.errors import ConfigError

    with pytest.raises(ConfigError, match="limit"):
        ui.check_upload(b"\xff" * 200, max_bytes=100)
    with pytest.raises(ConfigError, match="not a readable image"):
        ui.check_upload(b"<svg xmlns='http://www.w3.org/2000/svg'/>")


def test_similar_episodes_strip_on_the_episode_page(embedded_env: Path) -> None:
    lake = Lake(embedded_env)
    eid = lake.page(None, limit=1)[1]["episode_id"][0]
    expected = search(lake, like=eid, k=6)["episode_id"].to_list()
    at = open_page("views/episode.py", query={"episode": eid})
    links = [p for p in at.get("page_link")]
    assert len(links) >= len(expected)
    assert not at.exception


def test_mixture_preview_matches_resolve_and_saves_and_exports(embedded_env: Path, tmp_path: Path) -> None:
    manifest = resolve(load_spec(EXAMPLE), Lake(embedded_env))
    at = open_page("views/mixtures.py")
    at.selectbox(key="mix_start").set_value("demo_balanced (example)").run()
    assert not at.exception
    metrics = _metrics(at)
    assert metrics["Episodes selected"] == f"{manifest.selected_episodes:,}"
    groups = table_with(at, "before")
    assert sorted(groups["group"].tolist()) == sorted(g.group for g in manifest.groups)
    assert groups["after"].round(6).tolist() == [round(g.achieved_share, 6) for g in manifest.groups]

    at.button(key="mix_save").click().run()
    saved = tmp_path / "mixtures" / "demo_balanced.yaml"
    assert load_spec(saved) == load_spec(EXAMPLE)

    at.selectbox(key="mix_format").set_value("parquet")
    at.button(key="mix_export").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Exported" in s.value for s in at.success), [e.value for e in at.error]
    out = tmp_path / "mixtures" / "exports" / "demo_balanced-parquet"
    assert (out / "manifest.json").exists()
