"""Resolving specs on a real lake: determinism, labels, clusters from the derived table, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from curate.lake import Lake
from curate.mixtures import MixtureError, load_spec, preview, resolve, save_manifest, save_spec
from schemas.mixture import Manifest, MixtureSpec
from tests.helpers import REPO, run_cli


def test_same_spec_on_same_lake_version_gives_the_same_manifest_bytes(mix_lake: Lake, tmp_path: Path) -> None:
    spec = MixtureSpec(name="t", strategy="temperature", tau=0.5, unit="steps", budget=40, seed=3)
    a = save_manifest(resolve(spec, mix_lake), tmp_path / "a.json").read_bytes()
    b = save_manifest(resolve(spec, Lake(mix_lake.uri)), tmp_path / "b.json").read_bytes()
    assert a == b
    other = resolve(spec.model_copy(update={"seed": 4}), mix_lake)
    assert [e.repeats for e in other.episodes] != [e.repeats for e in Manifest.from_json(a.decode()).episodes]


def test_manifest_records_lake_version_label_mark_and_spec_hash(mix_lake: Lake) -> None:
    spec = MixtureSpec(name="n")
    m = resolve(spec, mix_lake)
    assert m.lake_version == mix_lake.version and m.labels_version == mix_lake.labels_version
    assert m.spec_hash == spec.spec_hash() and len(m.spec_hash) == 64
    assert m.excluded == {"gate:failed": 2, "gate:flagged": 1}
    assert sum(g.requested_share for g in m.groups) == pytest.approx(1.0)


def test_current_labels_decide_gates_and_groups(mix_lake: Lake) -> None:
    ids = mix_lake.episodes(where='dataset == "aloha"', columns=["episode_id"])["episode_id"].to_list()
    before = resolve(MixtureSpec(name="n"), mix_lake)
    mix_lake.relabel(ids[:2], "tags", ["bad"], author="qa")
    mix_lake.relabel(ids[2:4], "task_type", "wipe", author="qa")
    after = resolve(MixtureSpec(name="n"), Lake(mix_lake.uri))
    assert after.excluded["gate:bad_tags"] == 2
    assert after.labels_version > before.labels_version
    by_task = resolve(MixtureSpec(name="t", group_by="task_type", quality=[]), Lake(mix_lake.uri))
    assert {g.group: g.episodes for g in by_task.groups}["wipe"] == 2


def test_where_and_exclude_filters_select_episodes(mix_lake: Lake) -> None:
    m = resolve(MixtureSpec(name="f", where='split == "train"', exclude='dataset == "aloha"', quality=[]), mix_lake)
    assert {e.dataset for e in m.episodes} == {"bridge"}
    assert m.excluded == {"exclude": 8}


def test_coverage_uses_the_stored_cluster_column(mix_lake: Lake) -> None:
    from curate.analytics.derived import write_derived

    ids = sorted(mix_lake.episodes(columns=["episode_id"])["episode_id"].to_list())
    write_derived(mix_lake, pl.DataFrame({"episode_id": ids, "cluster": [i % 3 for i in range(len(ids))],
                                          "model_id": ["test"] * len(ids)}))
    m = resolve(MixtureSpec(name="c", strategy="coverage", budget=30, quality=[]), Lake(mix_lake.uri))
    assert {g.group for g in m.groups} == {"0", "1", "2"}
    assert [g.achieved_units for g in m.groups] == [10.0, 10.0, 10.0]
    target = resolve(MixtureSpec(name="m", strategy="match", target='dataset == "deploy"', budget=12, quality=[]),
                     Lake(mix_lake.uri))
    deploy = [i for i, eid in enumerate(ids) if eid in set(
        mix_lake.episodes(where='dataset == "deploy"', columns=["episode_id"])["episode_id"].to_list())]
    want = pl.Series([str(i % 3) for i in deploy]).value_counts(normalize=True)
    assert {g.group: g.requested_share for g in target.groups if g.requested_share > 0} == pytest.approx(
        dict(zip(want[""].to_list(), want["proportion"].to_list(), strict=True)))
    assert "deploy" not in {e.dataset for e in target.episodes}


def test_coverage_without_clusters_says_to_run_embed_and_audit(mix_lake: Lake) -> None:
    with pytest.raises(MixtureError, match="curate embed"):
        resolve(MixtureSpec(name="c", strategy="coverage"), mix_lake)


def test_preview_shows_shares_before_and_after(mix_lake: Lake) -> None:
    frame = preview(MixtureSpec(name="u", strategy="uniform", quality=[]), mix_lake)
    assert frame["requested_share"].to_list() == pytest.approx([1 / 3] * 3)
    assert frame["share_before"].sum() == pytest.approx(1.0)


def test_spec_files_round_trip_in_yaml_and_json(tmp_path: Path) -> None:
    spec = MixtureSpec(name="w", strategy="weighted", weights={"a": 2.0}, balance_weights=True, budget=10)
    for name in ("s.yaml", "s.json"):
        assert load_spec(save_spec(spec, tmp_path / name)) == spec


def test_example_specs_parse() -> None:
    for path in sorted((REPO / "examples" / "mixtures").glob("*.yaml")):
        assert load_spec(path).name == path.stem


def test_cli_mix_writes_a_manifest_and_prints_shares(mix_lake: Lake, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: cli\nstrategy: uniform\nunit: episodes\nbudget: 12\n")
    out = tmp_path / "m.json"
    proc = run_cli("mix", str(spec), "--lake", mix_lake.uri, "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["total_units"] == 12 and "episodes" not in summary
    assert Manifest.from_json(out.read_text()).selected_episodes <= 12


def test_cli_mix_names_the_unknown_group(mix_lake: Lake, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: bad\nstrategy: weighted\nweights: {bridge: 1, brigde: 2}\n")
    proc = run_cli("mix", str(spec), "--lake", mix_lake.uri, "--dry-run")
    assert proc.returncode == 2
    assert "brigde" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_mix_reports_a_cap_below_the_budget(mix_lake: Lake, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: cap\nstrategy: capped\nmax_units: 2\nbudget: 50\n")
    proc = run_cli("mix", str(spec), "--lake", mix_lake.uri, "--dry-run")
    assert proc.returncode == 2 and "budget is 50" in proc.stderr
