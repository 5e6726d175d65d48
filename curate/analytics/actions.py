"""Actions and quality, per embodiment: statistics of every named action/state dimension, episode lengths,
idle fraction, jerk, gripper chatter and outlier episodes.

Definitions (per episode): idle fraction = share of steps whose state (else action) changes by less than
`idle_eps` (L2); jerk = mean |third difference| of the action over time, times control_hz^3 (per s^3);
gripper chatter = number of open/close flips of the gripper dimension (a dimension named like 'grip')
beyond the two of one grasp; an outlier has a robust z-score (median/MAD) above `outlier_z` on length,
jerk or idle fraction within its embodiment.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from curate.lake import Lake

QUANTILES = (0.01, 0.05, 0.5, 0.95, 0.99)
SAMPLE_ROWS = 200_000


def episode_quality(actions: np.ndarray, states: np.ndarray | None, *, hz: float | None,
                    gripper_dim: int | None, idle_eps: float = 1e-3) -> dict[str, float]:
    """Quality numbers of one episode from its (T, d) action and state arrays."""
    t = len(actions)
    motion = states if states is not None and states.size and len(states) == t else actions
    if t > 1:
        step = np.linalg.norm(np.diff(motion, axis=0), axis=1)
        idle = float((step < idle_eps).mean())
    else:
        idle = 1.0
    jerk = 0.0
    if t > 3:
        jerk = float(np.abs(np.diff(actions, n=3, axis=0)).mean() * (hz or 1.0) ** 3)
    chatter = 0
    if gripper_dim is not None and actions.shape[1] > gripper_dim and t > 1:
        g = actions[:, gripper_dim]
        mid = (np.nanmax(g) + np.nanmin(g)) / 2
        binary = g > mid
        flips = int((binary[1:] != binary[:-1]).sum())
        chatter = max(0, flips - 2)
    return {"length": t, "idle_fraction": idle, "jerk": jerk, "gripper_chatter": chatter}


def _gripper_dim(names: list[str] | None) -> int | None:
    for i, n in enumerate(names or []):
        if "grip" in n.lower():
            return i
    return None


def _robust_z(values: pl.Expr) -> pl.Expr:
    med = values.median()
    mad = (values - med).abs().median()
    return (values - med) / (1.4826 * mad + 1e-9)


def action_audit(lake: Lake, *, where: str | None = None, outlier_z: float = 4.0,
                 idle_eps: float = 1e-3) -> tuple[dict[str, pl.DataFrame], dict[str, Any]]:
    """The actions-and-quality audit of a lake slice.

    Returns:
        (tables: episodes (per-episode quality + outlier flags), dimensions (per embodiment x dim statistics);
         summary per embodiment)
    """
    meta = lake.scan(where=where, columns=["episode_id", "embodiment", "action_space", "state_space", "control_hz",
                                           "n_steps"]).collect()
    if meta.height == 0:
        raise ValueError(f"the slice {where!r} is empty: no episode matches")
    info = {r["episode_id"]: r for r in meta.iter_rows(named=True)}
    per_ep: dict[str, dict[str, list[Any]]] = {}
    for batch in lake.iter_steps(list(info), columns=["episode_id", "index", "action", "state"]):
        for e, i, a, s in zip(batch.column("episode_id").to_pylist(), batch.column("index").to_pylist(),
                              batch.column("action").to_pylist(), batch.column("state").to_pylist(), strict=True):
            d = per_ep.setdefault(e, {"i": [], "a": [], "s": []})
            d["i"].append(i)
            d["a"].append(a or [])
            d["s"].append(s or [])
    rows = []
    samples: dict[tuple[str, str], list[np.ndarray]] = {}
    rng = np.random.default_rng(0)
    for e, d in per_ep.items():
        r = info[e]
        order = np.argsort(d["i"])
        acts = np.asarray([d["a"][j] for j in order], dtype=np.float32)
        sts = np.asarray([d["s"][j] for j in order], dtype=np.float32) if d["s"] and d["s"][0] else None
        if acts.ndim != 2:
            continue
        robot = (r["embodiment"] or {}).get("robot") or "unknown"
        names = (r["action_space"] or {}).get("names")
        q = episode_quality(acts, sts, hz=r["control_hz"], gripper_dim=_gripper_dim(names), idle_eps=idle_eps)
        rows.append({"episode_id": e, "embodiment": robot, **q})
        for space, arr in (("action", acts), ("state", sts)):
            if arr is None or arr.ndim != 2:
                continue
            keep = arr if len(arr) <= 64 else arr[rng.choice(len(arr), 64, replace=False)]
            samples.setdefault((robot, space), []).append(keep)
    episodes = pl.DataFrame(rows, schema={"episode_id": pl.String, "embodiment": pl.String, "length": pl.Int64,
                                          "idle_fraction": pl.Float64, "jerk": pl.Float64,
                                          "gripper_chatter": pl.Int64})
    zcols = []
    for col in ("length", "jerk", "idle_fraction"):
        zcols.append(_robust_z(pl.col(col)).over("embodiment").abs().alias(f"z_{col}"))
    episodes = episodes.with_columns(zcols).with_columns(
        (pl.max_horizontal("z_length", "z_jerk", "z_idle_fraction") > outlier_z).alias("outlier"))
    names_by_robot: dict[tuple[str, str], list[str]] = {}
    for r in meta.iter_rows(named=True):
        robot = (r["embodiment"] or {}).get("robot") or "unknown"
        for space in ("action", "state"):
            names_by_robot.setdefault((robot, space), list((r[f"{space}_space"] or {}).get("names") or []))
    dims = []
    for (robot, space), parts in samples.items():
        widths = {p.shape[1] for p in parts}
        if len(widths) != 1:
            continue
        arr = np.concatenate(parts)
        if len(arr) > SAMPLE_ROWS:
            arr = arr[rng.choice(len(arr), SAMPLE_ROWS, replace=False)]
        names = names_by_robot.get((robot, space)) or []
        qs = np.quantile(arr, QUANTILES, axis=0)
        for j in range(arr.shape[1]):
            dims.append({"embodiment": robot, "space": space, "dim": j,
                         "name": names[j] if j < len(names) else f"{space}_{j}",
                         "mean": float(arr[:, j].mean()), "std": float(arr[:, j].std()),
                         "min": float(arr[:, j].min()), "max": float(arr[:, j].max()),
                         **{f"p{int(q * 100):02d}": float(qs[i, j]) for i, q in enumerate(QUANTILES)}})
    dimensions = pl.DataFrame(dims) if dims else pl.DataFrame(schema={"embodiment": pl.String, "space": pl.String,
                                                                     "dim": pl.Int64, "name": pl.String})
    summary: dict[str, Any] = {"episodes": episodes.height, "outliers": int(episodes["outlier"].sum()),
                               "per_embodiment": {}}
    for g in episodes.group_by("embodiment", maintain_order=True):
        robot, sub = g[0][0], g[1]
        summary["per_embodiment"][robot] = {
            "episodes": sub.height, "length_mean": round(float(sub["length"].mean()), 3),
            "length_p50": float(sub["length"].median()), "length_max": int(sub["length"].max()),
            "idle_fraction_mean": round(float(sub["idle_fraction"].mean()), 4),
            "jerk_median": round(float(sub["jerk"].median()), 4),
            "gripper_chatter_episodes": int((sub["gripper_chatter"] > 0).sum()),
            "outliers": int(sub["outlier"].sum()),
        }
    return {"episodes": episodes.sort("episode_id"), "dimensions": dimensions}, summary
