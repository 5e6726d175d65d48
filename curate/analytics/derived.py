"""Derived per-episode columns (semantic cluster, machine tags, novelty) stored apart from source and labels.

`<lake>/derived.lance` holds one row per episode: what the latest `curate embed`/`curate audit` computed with
one CLIP model. The lake joins it (left join on episode_id) into `scan`, so filters and mixtures can say
`cluster == 3`, `"cluttered" in machine_tags` or `novelty > 0.4`. Human `tags` are never touched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import lance
import polars as pl
import pyarrow as pa

if TYPE_CHECKING:
    from curate.lake import Lake

DERIVED = "derived"
DERIVED_SCHEMA = pa.schema([
    pa.field("episode_id", pa.string(), nullable=False),
    pa.field("model_id", pa.string()),
    pa.field("cluster", pa.int32()),
    pa.field("machine_tags", pa.list_(pa.string())),
    pa.field("tag_scores", pa.string()),
    pa.field("novelty", pa.float64()),
])
JOINED = ("model_id", "cluster", "machine_tags", "novelty")
"""The derived columns a filter may name (`model_id` says which CLIP produced them)."""


def _table(lake: Lake) -> lance.LanceDataset | None:
    return lake.table(DERIVED)


def extend_schema(lake: Lake, base: pa.Schema) -> pa.Schema:
    """`base` plus the derived columns, when the lake has a derived table (else `base` unchanged)."""
    if _table(lake) is None:
        return base
    extra = [DERIVED_SCHEMA.field(n) for n in JOINED if n not in base.names]
    return pa.schema([*base, *extra])


def join_derived(lake: Lake, frame: pl.DataFrame, needed: set[str]) -> pl.DataFrame:
    """Left-join the derived columns in `needed` onto an episodes frame (nulls for episodes not yet derived)."""
    cols = [c for c in JOINED if c in needed and c not in frame.columns]
    ds = _table(lake)
    if not cols or ds is None:
        return frame
    table = ds.to_table(columns=["episode_id", *cols])
    derived = pl.from_arrow(table)
    assert isinstance(derived, pl.DataFrame)
    return frame.join(derived.unique("episode_id", keep="last"), on="episode_id", how="left")


def write_derived(lake: Lake, rows: pl.DataFrame) -> int:
    """Upsert derived rows by episode_id. Columns missing from `rows` keep their stored values.

    Returns the number of rows written.
    """
    lake.require_writable()
    if rows.height == 0:
        return 0
    ds = lake.table(DERIVED, refresh=True)
    if ds is not None:
        stored = pl.from_arrow(ds.to_table())
        assert isinstance(stored, pl.DataFrame)
        keep = [c for c in DERIVED_SCHEMA.names if c not in rows.columns]
        if keep:
            rows = rows.join(stored.select(["episode_id", *keep]), on="episode_id", how="left")
    for name in DERIVED_SCHEMA.names:
        if name not in rows.columns:
            rows = rows.with_columns(pl.lit(None).alias(name))
    table = rows.select(DERIVED_SCHEMA.names).to_arrow().cast(DERIVED_SCHEMA)
    uri = lake.table_uri(DERIVED)
    if ds is None:
        lance.write_dataset(table, uri, schema=DERIVED_SCHEMA, mode="create", storage_options=lake.storage_options)
    else:
        ds.merge_insert("episode_id").when_matched_update_all().when_not_matched_insert_all().execute(table)
    lake.table(DERIVED, refresh=True)
    return rows.height


def read_derived(lake: Lake) -> pl.DataFrame:
    """The derived table as a frame (empty with the right columns when there is none)."""
    ds = _table(lake)
    table: Any = DERIVED_SCHEMA.empty_table() if ds is None else ds.to_table()
    out = pl.from_arrow(table)
    assert isinstance(out, pl.DataFrame)
    return out
