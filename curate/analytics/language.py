"""Language audit of instructions: uniqueness, vocabulary, verbs and objects, phrasing styles, near-duplicate
phrasings and missing or placeholder instructions. Rules are simple and stated, so every number is explainable."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import polars as pl

from curate.lake import Lake

PLACEHOLDERS = {"", "none", "null", "n/a", "na", "todo", "tbd", "placeholder", "task", "do the task", "instruction",
                "default", "test", "-", "?", "unknown", "no instruction"}
QUESTION_START = ("can ", "could ", "would ", "will ", "please can", "how ", "what ", "where ", "is ")
DEICTIC = re.compile(r"\b(left of|right of|next to|behind|in front of|on top of|this|that one|there|here|"
                     r"closest|nearest|leftmost|rightmost|beside|between)\b")
COLLOQUIAL = re.compile(r"\b(yo|pls|plz|gonna|wanna|chuck|stick|grab|just|ok|okay|hey|stuff|thingy|dude|lol)\b")
STOP = {"the", "a", "an", "to", "in", "into", "on", "of", "and", "it", "you", "can", "could", "please", "that",
        "this", "from", "up", "with", "at", "goes", "is", "for", "just", "yo", "pls", "then", "its", "over"}
VERBS = {"put", "place", "move", "pick", "grab", "push", "pull", "open", "close", "turn", "stack", "drop", "take",
         "chuck", "stick", "lift", "wipe", "fold", "pour", "insert", "slide", "rotate", "flip", "press", "set",
         "bring", "carry", "hand", "throw", "knock", "sweep", "clean", "go", "navigate", "find", "heat", "cool",
         "slice", "toggle"}
_WORD = re.compile(r"[a-z][a-z'-]*")


def normalise(text: str) -> str:
    """Lowercase, strip punctuation and filler, collapse spaces (two phrasings equal here are near-duplicates)."""
    words = [w for w in _WORD.findall(text.lower()) if w not in {"please", "pls", "the", "a", "an", "yo", "just"}]
    return " ".join(words)


def style_of(text: str) -> str:
    """imperative, question, deictic (spatial/pointing reference) or colloquial; the first rule that fires."""
    t = text.strip().lower()
    if t.endswith("?") or t.startswith(QUESTION_START):
        return "question"
    if COLLOQUIAL.search(t):
        return "colloquial"
    if DEICTIC.search(t):
        return "deictic"
    return "imperative"


def is_placeholder(text: str | None) -> bool:
    return text is None or text.strip().lower().strip(".!") in PLACEHOLDERS or len(_WORD.findall(text.lower())) == 0


def objects_of(text: str) -> list[str]:
    """Object phrases: the one or two content words after each 'the' / 'that' (e.g. 'red cube')."""
    words = _WORD.findall(text.lower())
    out = []
    for i, w in enumerate(words):
        if w in ("the", "that") and i + 1 < len(words):
            phrase = [x for x in words[i + 1:i + 3] if x not in STOP and x not in VERBS]
            if len(phrase) == 2 and words[i + 2] in STOP:
                phrase = phrase[:1]
            if phrase:
                out.append(" ".join(phrase))
    return out


def verb_of(text: str) -> str | None:
    for w in _WORD.findall(text.lower()):
        if w in VERBS:
            return w
    return None


def language_audit_of(frame: pl.DataFrame) -> tuple[dict[str, pl.DataFrame], dict[str, Any]]:
    """The audit over a frame with episode_id and instruction (null allowed).

    Returns:
        (tables: per_episode, verbs, objects, styles, near_duplicates; summary numbers)
    """
    rows = []
    for r in frame.select("episode_id", "instruction").iter_rows(named=True):
        text = r["instruction"]
        missing = text is None or not text.strip()
        placeholder = not missing and is_placeholder(text)
        ok = not missing and not placeholder
        rows.append({"episode_id": r["episode_id"], "instruction": text, "missing": missing,
                     "placeholder": placeholder, "style": style_of(text) if ok else None,
                     "verb": verb_of(text) if ok else None, "normalised": normalise(text) if ok else None,
                     "n_words": len(_WORD.findall(text.lower())) if text else 0})
    per = pl.DataFrame(rows, schema={"episode_id": pl.String, "instruction": pl.String, "missing": pl.Boolean,
                                     "placeholder": pl.Boolean, "style": pl.String, "verb": pl.String,
                                     "normalised": pl.String, "n_words": pl.Int64})
    valid = per.filter(~pl.col("missing") & ~pl.col("placeholder"))
    vocab: Counter[str] = Counter()
    objects: Counter[str] = Counter()
    for text in valid["instruction"].to_list():
        vocab.update(_WORD.findall(text.lower()))
        objects.update(objects_of(text))
    verbs = valid.group_by("verb").agg(pl.len().alias("episodes")).sort("episodes", descending=True)
    styles = valid.group_by("style").agg(pl.len().alias("episodes")).sort("episodes", descending=True)
    near = (valid.group_by("normalised").agg(pl.col("instruction").unique().alias("phrasings"),
                                             pl.len().alias("episodes"))
            .filter(pl.col("phrasings").list.len() > 1).sort("episodes", descending=True))
    n = per.height
    summary = {
        "episodes": n,
        "with_instruction": valid.height,
        "missing": int(per["missing"].sum()), "placeholder": int(per["placeholder"].sum()),
        "missing_or_placeholder_share": round((int(per["missing"].sum()) + int(per["placeholder"].sum())) / n, 4)
        if n else 0.0,
        "unique_instructions": int(valid["instruction"].n_unique()),
        "unique_normalised": int(valid["normalised"].n_unique()),
        "vocabulary_size": len(vocab),
        "mean_words": round(float(valid["n_words"].mean() or 0), 3) if valid.height else 0.0,
        "styles": {r["style"]: r["episodes"] for r in styles.iter_rows(named=True)},
        "style_shares": {r["style"]: round(r["episodes"] / valid.height, 4) for r in styles.iter_rows(named=True)}
        if valid.height else {},
        "top_verbs": {str(r["verb"]): r["episodes"] for r in verbs.head(15).iter_rows(named=True)},
        "top_objects": dict(objects.most_common(20)),
        "near_duplicate_groups": near.height,
    }
    tables = {
        "per_episode": per, "verbs": verbs,
        "objects": pl.DataFrame({"object": list(objects), "mentions": list(objects.values())},
                                schema={"object": pl.String, "mentions": pl.Int64}).sort("mentions", descending=True),
        "styles": styles, "near_duplicates": near,
    }
    return tables, summary


def language_audit(lake: Lake, *, where: str | None = None) -> tuple[dict[str, pl.DataFrame], dict[str, Any]]:
    """The language audit of a lake slice (current labels applied)."""
    frame = lake.scan(where=where, columns=["episode_id", "instruction"]).collect()
    if frame.height == 0:
        raise ValueError(f"the slice {where!r} is empty: no episode matches")
    return language_audit_of(frame)
