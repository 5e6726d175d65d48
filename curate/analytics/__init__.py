"""The audit: each analysis is a function over a lake slice (a filter) returning tidy Polars tables and a dict of
summary numbers. `run_audit` runs them all (what `curate audit` writes into its HTML and JSON);
`derive` stores clusters and machine tags in the lake so filters and mixtures can use them.

    from curate.analytics import run_audit, clusters
    result = run_audit(lake, where='split != "deploy"')
    result.metrics["coverage"]["tail_share"]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from curate.analytics.actions import action_audit
from curate.analytics.coverage import Coverage, coverage, coverage_of
from curate.analytics.derived import read_derived, write_derived
from curate.analytics.duplicates import exact_duplicates, near_duplicates, near_duplicates_of
from curate.analytics.language import language_audit, language_audit_of
from curate.analytics.shift import ShiftAudit, shift_audit, shift_of
from curate.analytics.tags import machine_tag_lists, zero_shot_tags
from curate.embed import EmbeddingsMissingError, active_model
from curate.errors import CurateError
from curate.lake import Lake

__all__ = [
    "AuditResult", "Coverage", "ShiftAudit", "action_audit", "clusters", "coverage", "coverage_of", "derive",
    "exact_duplicates", "language_audit", "language_audit_of", "near_duplicates", "near_duplicates_of",
    "run_audit", "shift_audit", "shift_of", "zero_shot_tags",
]


class EmptySliceError(CurateError, ValueError):
    """The filter matches no episode, so there is nothing to audit."""

    exit_code = 2


@dataclass
class AuditResult:
    """Every table and number of one audit. `metrics` is exactly what `--json` writes."""

    metrics: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    coverage: Coverage | None = None
    shift: ShiftAudit | None = None


def clusters(lake: Lake, *, where: str | None = None, k: int | None = None, model_id: str | None = None,
             seed: int = 0, recompute: bool = False) -> pl.DataFrame:
    """episode_id, dataset, cluster for a slice: the stored clusters (derived table, as `cluster == N` filters
    see them) when present for the active model and `k` is not given, else freshly computed."""
    if not recompute and k is None:
        stored = lake.scan(where=where, columns=["episode_id", "dataset", "cluster", "model_id"]).collect() \
            if "cluster" in lake.schema().names else None
        active = active_model(lake)["model_id"] if model_id is None else model_id
        if stored is not None and stored.height and stored["cluster"].null_count() == 0 \
                and set(stored["model_id"].unique().to_list()) == {active}:
            return stored.select("episode_id", "dataset", "cluster")
    from curate.analytics.coverage import clusters as compute

    return compute(lake, where=where, k=k, model_id=model_id, seed=seed)


def derive(lake: Lake, *, k: int | None = None, model_id: str | None = None, vocabularies: Any = None,
           min_prob: float = 0.0, seed: int = 0) -> dict[str, Any]:
    """Compute clusters (whole lake) and zero-shot machine tags and store them in the derived table."""
    model_id = model_id or active_model(lake)["model_id"]
    cov = coverage(lake, k=k, model_id=model_id, seed=seed)
    tags, tag_sum = zero_shot_tags(lake, model_id=model_id, vocabularies=vocabularies, min_prob=min_prob)
    lists = machine_tag_lists(tags)
    rows = (cov.episodes.select("episode_id", pl.col("cluster").cast(pl.Int32))
            .join(lists, on="episode_id", how="left")
            .with_columns(pl.lit(model_id).alias("model_id")))
    write_derived(lake, rows)
    return {"model_id": model_id, "episodes": rows.height, "k": cov.summary["k"], "tags": tag_sum}


def run_audit(lake: Lake, *, where: str | None = None, reference: str | None = None, target: str | None = None,
              k: int | None = None, model_id: str | None = None, near_threshold: float = 0.98,
              exact: bool = True, vocabularies: Any = None, progress: Any = None) -> AuditResult:
    """Run every analysis over a slice (and the shift audit when `target` is given).

    Raises:
        EmptySliceError: the filter matches nothing.
        EmbeddingsMissingError: the lake has no vectors (run `curate embed`).
    """
    n = lake.count(where)
    if n == 0:
        raise EmptySliceError(f"the filter {where!r} matches no episode of lake {lake.uri}; nothing to audit")
    model = active_model(lake) if model_id is None else {"model_id": model_id}
    result = AuditResult()
    m = result.metrics
    m["lake"] = {"uri": lake.uri, "version": lake.version, "where": where, "episodes": n, "model": model}

    def step(name: str, i: int) -> None:
        if progress is not None:
            progress("audit: " + name, i, 7)

    step("coverage", 0)
    cov = coverage(lake, where=where, k=k, model_id=model["model_id"])
    result.coverage = cov
    m["coverage"] = cov.summary
    result.tables.update({"clusters": cov.clusters, "cluster_by_dataset": cov.by_dataset,
                          "cluster_by_embodiment": cov.by_embodiment, "episode_clusters": cov.episodes})
    step("tags", 1)
    tags, tag_sum = zero_shot_tags(lake, where=where, model_id=model["model_id"], vocabularies=vocabularies)
    m["tags"] = tag_sum
    result.tables["machine_tags"] = tags
    step("language", 2)
    lang_tables, lang_sum = language_audit(lake, where=where)
    m["language"] = lang_sum
    result.tables.update({f"language_{k2}": v for k2, v in lang_tables.items()})
    step("duplicates", 3)
    near, near_sum = near_duplicates(lake, where=where, threshold=near_threshold, model_id=model["model_id"])
    m["duplicates"] = {"near": near_sum}
    result.tables["near_duplicates"] = near
    if exact:
        ex, ex_sum = exact_duplicates(lake, where=where)
        m["duplicates"]["exact"] = ex_sum
        result.tables["exact_duplicates"] = ex
    step("actions", 4)
    act_tables, act_sum = action_audit(lake, where=where)
    m["actions"] = act_sum
    result.tables.update({"action_episodes": act_tables["episodes"], "action_dimensions": act_tables["dimensions"]})
    if target is not None:
        step("shift", 5)
        audit = shift_audit(lake, reference=reference if reference is not None else where, target=target,
                            model_id=model["model_id"])
        result.shift = audit
        m["shift"] = audit.summary
        result.tables.update({"shift_target": audit.target, "shift_clusters": audit.clusters})
    step("done", 7)
    return result


__all__ += ["EmbeddingsMissingError", "EmptySliceError", "read_derived"]
