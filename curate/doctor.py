"""Lake integrity checks for `curate doctor`: what is wrong, and what to do about it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

from curate.lake import EPISODES, FRAMES, LABELS, STEPS, TABLE_SCHEMAS, Lake


@dataclass
class Finding:
    level: str  # "error" | "warning"
    table: str
    message: str
    fix: str = ""


@dataclass
class DoctorReport:
    lake: str
    version: int
    checks: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.level == "error" for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {"lake": self.lake, "version": self.version, "ok": self.ok, "checks": self.checks,
                "findings": [asdict(f) for f in self.findings]}


def check_lake(lake: Lake) -> DoctorReport:
    """Run every check; never modifies the lake."""
    report = DoctorReport(lake=lake.uri, version=lake.version)

    def add(level: str, table: str, message: str, fix: str = "") -> None:
        report.findings.append(Finding(level, table, message, fix))

    datasets = {}
    for name in (EPISODES, STEPS, FRAMES, LABELS):
        report.checks.append(f"{name}: opens and has the expected columns")
        try:
            ds = lake.table(name, refresh=True)
        except Exception as exc:  # a damaged table must be reported, not crash the doctor
            add("error", name, f"table cannot be opened: {exc}", "restore it from a backup or re-ingest")
            continue
        if ds is None:
            continue
        datasets[name] = ds
        have = set(ds.schema.names)
        missing = [f.name for f in TABLE_SCHEMAS[name] if f.name not in have]
        if missing:
            add("error", name, f"missing columns: {', '.join(missing)}", "this lake was written by another version")

    eps = datasets.get(EPISODES)
    if eps is None:
        add("warning", EPISODES, "the lake holds no episodes yet", "run `curate ingest SOURCE` or `curate demo`")
        return report

    report.checks.append("episodes: ids are unique")
    episodes = pl.from_arrow(eps.to_table(columns=["episode_id", "revision", "n_steps", "schema_version"]))
    assert isinstance(episodes, pl.DataFrame)
    dupes = episodes.group_by("episode_id").len().filter(pl.col("len") > 1)
    if dupes.height:
        add("error", EPISODES, f"{dupes.height} episode ids appear more than once, e.g. {dupes['episode_id'][0]}",
            "re-ingest the affected source")

    report.checks.append("episodes: schema_version not newer than this curate")
    from schemas import SCHEMA_VERSION

    newer = episodes.filter(pl.col("schema_version") > SCHEMA_VERSION)
    if newer.height:
        add("error", EPISODES, f"{newer.height} rows have a schema_version newer than {SCHEMA_VERSION}",
            "upgrade curate")

    report.checks.append("steps: every episode has exactly n_steps steps with indices 0..n-1")
    steps_ds = datasets.get(STEPS)
    if steps_ds is not None:
        steps = pl.from_arrow(steps_ds.to_table(columns=["episode_id", "revision", "index"]))
        assert isinstance(steps, pl.DataFrame)
        per = steps.group_by(["episode_id", "revision"]).agg(
            pl.len().alias("found"), pl.col("index").n_unique().alias("unique"), pl.col("index").max().alias("max"))
        joined = episodes.join(per, on=["episode_id", "revision"], how="left").with_columns(
            pl.col("found").fill_null(0))
        bad = joined.filter(
            (pl.col("n_steps") > 0)
            & ((pl.col("found") != pl.col("n_steps")) | (pl.col("unique") != pl.col("n_steps"))
               | (pl.col("max") != pl.col("n_steps") - 1)))
        if bad.height:
            row = bad.row(0, named=True)
            add("error", STEPS, f"{bad.height} episodes do not have their steps, e.g. {row['episode_id']} "
                f"declares {row['n_steps']} steps and has {row['found']}", "re-ingest those episodes")
        current = set(episodes["revision"].to_list())
        report.checks.append("steps: rows left behind by interrupted writes")
        orphan_revs = per.filter(~pl.col("revision").is_in(list(current)))
        if orphan_revs.height:
            add("warning", STEPS, f"{int(orphan_revs['found'].sum())} step rows belong to no current episode "
                "(earlier revisions or an interrupted write); they are invisible",
                "`curate vacuum` removes those no version still needs")
    elif episodes.filter(pl.col("n_steps") > 0).height:
        add("error", STEPS, "episodes declare steps but the steps table is missing", "re-ingest")

    labels_ds = datasets.get(LABELS)
    if labels_ds is not None:
        report.checks.append("labels: every event names an episode in the lake")
        labels = pl.from_arrow(labels_ds.to_table(columns=["episode_id"]))
        assert isinstance(labels, pl.DataFrame)
        unknown = labels.filter(~pl.col("episode_id").is_in(episodes["episode_id"].to_list()))
        if unknown.height:
            add("warning", LABELS, f"{unknown.height} label events name episodes not in the current version",
                "they were deleted or not yet re-ingested; the events are kept as history")
    return report
