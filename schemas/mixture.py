"""Mixture specs (what a user asks for) and manifests (what a spec resolved to on one lake version).

A `MixtureSpec` is written by hand (YAML or JSON) or saved from the UI; `curate mix` resolves it against a
lake into a `Manifest`: the chosen episodes with sampling weights and repeat counts, the share each group
asked for and got, and the lake version and label high-water mark it was drawn from, so an export can be
reproduced exactly. Both are plain pydantic models; no I/O happens here except (de)serialising text.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Strategy = Literal["natural", "uniform", "temperature", "weighted", "capped", "coverage", "match"]
Unit = Literal["episodes", "steps", "hours"]
Dedup = Literal["none", "source", "near"]
QualityGate = Literal["flagged", "failed", "bad_tags", "unlabelled"]
MissingGroups = Literal["error", "ignore"]

MANIFEST_FORMAT = "curate-mixture-manifest"
MANIFEST_VERSION = 1
DEFAULT_BAD_TAGS = ("bad", "reject", "exclude", "discard")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MixtureSpec(_Model):
    """How to pick and weight episodes for a training mixture.

    `group_by` names any episodes column (dotted paths into structs, e.g. `embodiment.robot`), or `tag`
    (each tag of `tags` is a group; an episode with several tags counts in each at a fraction) or `cluster`.
    The strategy turns group sizes into target shares; `max_share`/`max_units` cap any strategy.
    """

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str | None = None
    where: str | None = None
    """Include filter (the filter language); None = every episode."""
    exclude: str | None = None
    """Episodes matching this filter are dropped."""
    group_by: str = "dataset"
    strategy: Strategy = "natural"
    tau: float = Field(default=0.5, ge=0.0, le=1.0)
    """Temperature exponent: share proportional to size**tau (1 = natural, 0 = uniform)."""
    weights: dict[str, float] = Field(default_factory=dict)
    """Per-group weights for `weighted` (groups not listed get `default_weight`)."""
    default_weight: float = Field(default=0.0, ge=0.0)
    balance_weights: bool = False
    """Octo/OpenVLA `balance_weights`: multiply each weight by the group's size in steps before normalising."""
    missing_groups: MissingGroups = "error"
    """A weight names a group the lake does not have: `error` (default) or `ignore` (for imported recipes)."""
    max_share: float | None = Field(default=None, gt=0.0, le=1.0)
    """Cap: no group gets more than this share of the budget (the rest is redistributed)."""
    max_units: float | None = Field(default=None, gt=0.0)
    """Cap: no group gets more than this many units."""
    target: str | None = None
    """`match`: filter selecting the target slice (e.g. deployment logs) whose cluster distribution to match."""
    unit: Unit = "episodes"
    budget: float | None = Field(default=None, gt=0.0)
    """Total units in the mixture; None = the number of units selected (before dedup and gates)."""
    dedup: Dedup = "none"
    """`source`: drop episodes with the same source fingerprint; `near`: drop near-duplicates found by the audit."""
    quality: list[QualityGate] = Field(default_factory=lambda: ["flagged", "failed", "bad_tags"])
    bad_tags: list[str] = Field(default_factory=lambda: list(DEFAULT_BAD_TAGS))
    seed: int = 0

    @model_validator(mode="before")
    @classmethod
    def _cluster_strategies_group_by_cluster(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("strategy") in ("coverage", "match") and "group_by" not in data:
            data = {**data, "group_by": "cluster"}
        return data

    @model_validator(mode="after")
    def _parameters_fit_strategy(self) -> MixtureSpec:
        if self.strategy == "weighted" and not self.weights:
            raise ValueError("strategy 'weighted' needs `weights` (group -> weight)")
        if self.strategy == "capped" and self.max_share is None and self.max_units is None:
            raise ValueError("strategy 'capped' needs `max_share` or `max_units`")
        if self.strategy == "match" and not self.target:
            raise ValueError("strategy 'match' needs `target`: a filter selecting the slice to match, "
                             "e.g. 'dataset == \"deploy_kitchen\"'")
        bad = {k: v for k, v in self.weights.items() if not v >= 0}
        if bad:
            raise ValueError(f"weights must be >= 0; got {bad}")
        return self

    def canonical_json(self) -> str:
        """The spec as compact JSON with sorted keys: what `spec_hash` is computed over."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def spec_hash(self) -> str:
        """sha256 of the canonical JSON: two specs that mean the same have the same hash."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    @classmethod
    def from_text(cls, text: str, *, name_hint: str | None = None) -> MixtureSpec:
        """Parse YAML or JSON text (JSON is YAML); `name_hint` fills a missing name."""
        import yaml

        data = yaml.safe_load(text)
        if not isinstance(data, dict):
            raise ValueError("a mixture spec is a mapping (YAML or JSON object) with at least `name`")
        if name_hint and "name" not in data:
            data["name"] = name_hint
        return cls.model_validate(data)

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.model_dump(mode="json", exclude_defaults=True) | {"name": self.name},
                              sort_keys=False, allow_unicode=True)


class GroupShare(_Model):
    """One group of a resolved mixture: what it had, what it asked for, what it got."""

    group: str
    episodes: int
    """Episodes of the group that passed filters, gates and dedup."""
    units_available: float
    requested_share: float
    requested_units: float
    achieved_units: float
    achieved_share: float
    selected_episodes: int
    """Distinct episodes drawn at least once."""
    max_repeats: int
    capped: bool = False
    note: str | None = None


class ManifestEpisode(_Model):
    """One episode of the mixture: its group, size in units, sampling weight and repeat count."""

    episode_id: str
    dataset: str
    group: str
    units: float
    weight: float
    """Probability of drawing this episode (all weights sum to 1) so that groups get their requested share."""
    repeats: int
    """Integer copies for file exports: the budget met with whole episodes (0 = not selected)."""


class Manifest(_Model):
    """A resolved mixture: deterministic for (spec, lake version, label high-water mark)."""

    format: Literal["curate-mixture-manifest"] = MANIFEST_FORMAT
    manifest_version: int = MANIFEST_VERSION
    name: str
    spec: MixtureSpec
    spec_hash: str
    lake_uri: str
    lake_version: int
    labels_version: int
    unit: Unit
    budget: float
    total_units: float
    total_episodes: int
    selected_episodes: int
    excluded: dict[str, int] = Field(default_factory=dict)
    """Episodes dropped before weighting, by reason (exclude filter, gates, dedup, target slice)."""
    groups: list[GroupShare]
    effective_groups_requested: float
    effective_groups_achieved: float
    """exp(entropy) of the shares: the number of equally weighted groups with the same spread."""
    warnings: list[str] = Field(default_factory=list)
    episodes: list[ManifestEpisode]

    def to_json(self) -> str:
        """Stable JSON: sorted keys, fixed float formatting, no timestamps; identical inputs give identical bytes."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, indent=1, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        return cls.model_validate_json(text)

    def dataset_weights(self, *, basis: Literal["weights", "repeats"] = "weights") -> dict[str, float]:
        """Share of the mixture per dataset (sums to 1): from the sampling weights, or from the whole-episode
        repeats that file exports write."""
        out: dict[str, float] = {}
        for ep in self.episodes:
            value = ep.weight if basis == "weights" else ep.repeats * ep.units
            out[ep.dataset] = out.get(ep.dataset, 0.0) + value
        total = sum(out.values()) or 1.0
        return {k: v / total for k, v in sorted(out.items()) if v > 0}

    def copy_weight(self, episode: ManifestEpisode, *, copies: int) -> float:
        """Share of an export held by one written copy of `episode` (all copies of all episodes sum to 1)."""
        total = self.total_units or 1.0
        return episode.repeats * episode.units / total / max(1, copies)

    def selected(self) -> list[ManifestEpisode]:
        """Episodes with at least one repeat, in manifest order."""
        return [ep for ep in self.episodes if ep.repeats > 0]

    def summary(self) -> dict[str, Any]:
        """The headline numbers (no per-episode rows), for `--json` output and the UI."""
        return self.model_dump(mode="json", exclude={"episodes"})
