"""Zero-shot machine tags: CLIP prompts from editable vocabularies scored against each episode's keyframes.

Each vocabulary (objects, scene types, clutter, lighting) is a list of labels with one prompt template; an
episode gets, per vocabulary, the label whose prompt best matches its keyframes (softmax over the vocabulary,
kept when its probability beats `min_prob`). Tags are stored in the derived table's `machine_tags`, apart from
human `tags`, so filters (`"cluttered" in machine_tags`) and mixtures can use them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curate.embed import load_lake_model, load_vectors
from curate.errors import ConfigError
from curate.lake import Lake
from curate.models import ClipModel

DEFAULT_VOCABULARIES: dict[str, dict[str, Any]] = {
    "object": {"template": "a photo of a {}", "labels": [
        "red cube", "blue cube", "green cube", "white cube", "green ball", "yellow ball", "red ball",
        "blue cylinder", "orange cylinder", "purple triangle", "yellow banana", "black screwdriver", "pink star",
        "teal ring", "orange star", "teal banana", "cup", "mug", "bottle", "sponge", "towel", "spoon", "fork",
        "knife", "plate", "bowl", "can", "box", "block", "drawer", "door", "cloth", "fruit", "toy"]},
    "scene": {"template": "a robot working on a {}", "labels": [
        "lab table", "white desk", "wood bench", "kitchen counter", "sink", "shelf", "floor", "office desk"]},
    "clutter": {"template": "a photo of {}", "labels": [
        "a clean table with one object", "a cluttered table with many objects"],
        "names": ["uncluttered", "cluttered"]},
    "lighting": {"template": "a photo in {}", "labels": ["normal lighting", "bright lighting", "dim lighting"],
                 "names": ["normal_light", "bright", "dim"]},
}
COMMON_OBJECT_SHARE = 0.05
"""An object label is long-tail when it is the top object of fewer than this share of the slice's episodes."""
TARGETS = {"long_tail_object_share": 0.30, "cluttered_share": 0.20}
"""Practitioners' recommended minimums: at least 30% long-tail objects and 20% cluttered scenes."""


def load_vocabularies(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """The default vocabularies, or a JSON file {name: {"template": "...{}...", "labels": [...]}} replacing them."""
    if path is None:
        return DEFAULT_VOCABULARIES
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read vocabularies from {path}: {exc}") from None
    for name, voc in data.items():
        if not isinstance(voc, dict) or not voc.get("labels") or "{}" not in voc.get("template", "{}"):
            raise ConfigError(f"vocabulary {name!r} in {path} needs a non-empty 'labels' list and a template with {{}}")
    return data


def tag_vectors(image_vectors: np.ndarray, owners: np.ndarray, model: ClipModel, *,
                vocabularies: dict[str, dict[str, Any]] | None = None, min_prob: float = 0.0,
                temperature: float = 100.0) -> pl.DataFrame:
    """Tags per owner (episode index) from its image vectors: one row per (owner, vocabulary)."""
    vocabularies = vocabularies or DEFAULT_VOCABULARIES
    rows = []
    uniq, inverse = np.unique(owners, return_inverse=True)
    for vname, voc in vocabularies.items():
        labels = list(voc["labels"])
        names = list(voc.get("names") or labels)
        prompts = [voc.get("template", "{}").format(lab) for lab in labels]
        text = model.encode_texts(prompts)
        logits = temperature * image_vectors @ text.T
        # an episode's score for a label: mean over its keyframes
        sums = np.zeros((len(uniq), len(labels)))
        np.add.at(sums, inverse, logits)
        counts = np.bincount(inverse, minlength=len(uniq))[:, None]
        mean = sums / np.maximum(counts, 1)
        prob = np.exp(mean - mean.max(1, keepdims=True))
        prob /= prob.sum(1, keepdims=True)
        top = prob.argmax(1)
        for i, owner in enumerate(uniq):
            p = float(prob[i, top[i]])
            rows.append({"owner": int(owner), "vocabulary": vname, "tag": names[top[i]], "score": p,
                         "kept": p >= min_prob})
    return pl.DataFrame(rows)


def zero_shot_tags(lake: Lake, *, where: str | None = None, model: ClipModel | None = None,
                   model_id: str | None = None, vocabularies: dict[str, dict[str, Any]] | None = None,
                   min_prob: float = 0.0) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Machine tags of a lake slice: (table episode_id, vocabulary, tag, score; summary with target shares)."""
    rows, vectors = load_vectors(lake, model_id=model_id, where=where, kind="image")
    model = model or load_lake_model(lake, model_id)
    ids = rows["episode_id"].to_list()
    uniq = sorted(set(ids))
    index = {e: i for i, e in enumerate(uniq)}
    owners = np.array([index[e] for e in ids])
    table = tag_vectors(vectors, owners, model, vocabularies=vocabularies, min_prob=min_prob)
    table = table.with_columns(pl.col("owner").replace_strict(dict(enumerate(uniq)), return_dtype=pl.String)
                               .alias("episode_id")).drop("owner").select("episode_id", "vocabulary", "tag",
                                                                          "score", "kept")
    return table, tag_summary(table)


def tag_summary(table: pl.DataFrame) -> dict[str, Any]:
    """Shares per tag, the long-tail-object share and the cluttered share next to the recommended targets."""
    n = table["episode_id"].n_unique() if table.height else 0
    out: dict[str, Any] = {"episodes": n, "distributions": {}}
    for vname in table["vocabulary"].unique().sort().to_list() if n else []:
        sub = table.filter((pl.col("vocabulary") == vname) & pl.col("kept"))
        counts = sub.group_by("tag").agg(pl.len().alias("n")).sort("n", descending=True)
        out["distributions"][vname] = {r["tag"]: round(r["n"] / n, 4) for r in counts.iter_rows(named=True)}
    objects = out["distributions"].get("object", {})
    tail = [t for t, share in objects.items() if share < COMMON_OBJECT_SHARE]
    out["long_tail_objects"] = tail
    out["long_tail_object_share"] = round(sum(objects[t] for t in tail), 4)
    out["cluttered_share"] = out["distributions"].get("clutter", {}).get("cluttered", 0.0)
    out["targets"] = TARGETS
    out["meets_targets"] = {k: out[k] >= v for k, v in TARGETS.items()}
    return out


def machine_tag_lists(table: pl.DataFrame) -> pl.DataFrame:
    """episode_id -> machine_tags (list of kept tags) and tag_scores (JSON), ready for the derived table."""
    tags: dict[str, list[str]] = {}
    scores: dict[str, dict[str, Any]] = {}
    for r in table.filter(pl.col("kept")).iter_rows(named=True):
        tags.setdefault(r["episode_id"], []).append(r["tag"])
        scores.setdefault(r["episode_id"], {})[r["vocabulary"]] = {"tag": r["tag"], "score": round(r["score"], 4)}
    ids = list(tags)
    return pl.DataFrame({"episode_id": ids, "machine_tags": [tags[e] for e in ids],
                         "tag_scores": [json.dumps(scores[e]) for e in ids]},
                        schema={"episode_id": pl.String, "machine_tags": pl.List(pl.String), "tag_scores": pl.String})
