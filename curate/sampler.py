"""Train straight from the lake: a PyTorch IterableDataset that draws steps with a manifest's weights.

    manifest = load_manifest("mix.json")
    data = LakeMixtureDataset(manifest, seed=0, images="array")
    loader = torch.utils.data.DataLoader(data, batch_size=None, num_workers=2, multiprocessing_context="spawn")
    for sample in itertools.islice(loader, 1000): ...

Each draw picks an episode with probability proportional to its weight (the manifest's sampling weights:
groups get their requested share of the mixture's units), then a step of it uniformly (unit steps/hours)
or the whole episode (`mode="episodes"`). Draws come from a generator seeded by (seed, epoch, worker), so
the same seed gives the same stream in every run, and DataLoader workers draw disjoint streams.
Lance is not fork-safe: run DataLoader workers with `multiprocessing_context="spawn"` (or "forkserver"). The lake is
read at the manifest's version and label high-water mark; nothing is exported.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np

from curate.lake import Lake
from schemas import Episode
from schemas.mixture import Manifest

SampleMode = Literal["steps", "episodes"]
ImageMode = Literal["bytes", "array", "none"]

try:  # torch is optional for the engine; the sampler is the one place that uses it
    from torch.utils.data import IterableDataset as _Base
except ImportError:  # pragma: no cover - torch is installed in the supported environment
    _Base = object  # type: ignore[assignment,misc]


def draw_probabilities(manifest: Manifest, *, mode: SampleMode = "steps") -> tuple[list[str], np.ndarray]:
    """(episode ids, probability of drawing each episode) from the manifest weights.

    In steps mode the weight (a share of units) is drawn directly and a step is then picked uniformly; in
    episodes mode the weight is divided by the episode's units, so each group still gets its share of units.
    """
    rows = [e for e in manifest.episodes if e.weight > 0]
    if not rows:
        raise ValueError(f"manifest {manifest.name!r} has no episode with a positive weight")
    w = np.array([e.weight for e in rows], dtype=np.float64)
    if mode == "episodes" and manifest.unit != "episodes":
        w = w / np.array([max(e.units, 1e-12) for e in rows])
    return [e.episode_id for e in rows], w / w.sum()


class LakeMixtureDataset(_Base):  # type: ignore[misc,valid-type]
    """An infinite (or `num_samples`-long) weighted stream of steps or episodes read from the lake.

    Args:
        manifest: a resolved mixture (`curate mix`).
        lake: the lake or its URI; default the manifest's lake, pinned to its version and labels.
        seed: base seed; call `set_epoch(n)` between epochs for a fresh, still reproducible order.
        mode: "steps" yields one step per draw; "episodes" yields whole episodes.
        images: "array" (HxWx3 uint8 numpy), "bytes" (encoded JPEG/PNG as stored) or "none".
        num_samples: stop after this many draws (across all workers); None = endless.
        cache_episodes: episodes kept in memory per worker (drawn episodes are reused while cached).
    """

    def __init__(self, manifest: Manifest, *, lake: Lake | str | None = None, seed: int = 0,
                 mode: SampleMode = "steps", images: ImageMode = "array", num_samples: int | None = None,
                 cache_episodes: int = 256) -> None:
        from curate.mixtures import lake_for

        self.manifest = manifest
        self._lake_uri = lake.uri if isinstance(lake, Lake) else lake
        self._lake_for = lake_for
        self.seed = seed
        self.epoch = 0
        self.mode = mode
        self.images = images
        self.num_samples = num_samples
        self.cache_episodes = cache_episodes
        self.ids, self.p = draw_probabilities(manifest, mode=mode)
        self._lake: Lake | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        if self.num_samples is None:
            raise TypeError("an endless LakeMixtureDataset has no length; pass num_samples")
        return self.num_samples

    def _open(self) -> Lake:
        if self._lake is None:  # opened lazily, inside each DataLoader worker
            self._lake = self._lake_for(self.manifest, lake=self._lake_uri)
        return self._lake

    def _worker(self) -> tuple[int, int]:
        try:
            from torch.utils.data import get_worker_info
        except ImportError:  # pragma: no cover
            return 0, 1
        info = get_worker_info()
        return (0, 1) if info is None else (info.id, info.num_workers)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker, workers = self._worker()
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, self.epoch, worker, workers])
        if self.num_samples is None:
            count = math.inf
        else:
            count = self.num_samples // workers + (1 if worker < self.num_samples % workers else 0)
        lake = self._open()
        cache: OrderedDict[str, Episode] = OrderedDict()
        drawn = 0
        while drawn < count:
            block = int(min(1024, count - drawn)) if count != math.inf else 1024
            for idx in rng.choice(len(self.ids), size=block, p=self.p):
                episode = self._episode(lake, cache, self.ids[int(idx)])
                if self.mode == "episodes":
                    yield self._episode_sample(episode)
                else:
                    step = int(rng.integers(0, episode.n_steps)) if episode.n_steps else 0
                    yield self._step_sample(episode, step)
                drawn += 1

    def _episode(self, lake: Lake, cache: OrderedDict[str, Episode], episode_id: str) -> Episode:
        if episode_id in cache:
            cache.move_to_end(episode_id)
            return cache[episode_id]
        frames = "none" if self.images == "none" else "eager"
        episode = lake.episode(episode_id, frames=frames)
        cache[episode_id] = episode
        if len(cache) > self.cache_episodes:
            cache.popitem(last=False)
        return episode

    def _images(self, step: Any) -> dict[str, Any]:
        if self.images == "none":
            return {}
        from curate.media import decode_frame

        out: dict[str, Any] = {}
        for frame in step.frames:
            if self.images == "bytes" and frame.format != "video":
                out[frame.camera] = frame.read_bytes()
            else:
                out[frame.camera] = np.array(decode_frame(frame))
        return out

    def _step_sample(self, episode: Episode, index: int) -> dict[str, Any]:
        step = episode.steps[index]
        return {
            "episode_id": episode.episode_id, "dataset": episode.dataset, "step": index,
            "instruction": episode.instruction or "", "action": np.asarray(step.action, dtype=np.float32),
            "state": None if step.state is None else np.asarray(step.state, dtype=np.float32),
            "is_first": step.is_first, "is_last": step.is_last, "images": self._images(step),
        }

    def _episode_sample(self, episode: Episode) -> dict[str, Any]:
        return {
            "episode_id": episode.episode_id, "dataset": episode.dataset,
            "instruction": episode.instruction or "",
            "action": np.asarray([s.action for s in episode.steps], dtype=np.float32),
            "state": (np.asarray([s.state for s in episode.steps], dtype=np.float32)
                      if episode.steps and all(s.state is not None for s in episode.steps) else None),
            "images": [self._images(s) for s in episode.steps],
        }


def weighted_sampler(manifest: Manifest, *, num_samples: int, seed: int = 0) -> Any:
    """A `torch.utils.data.WeightedRandomSampler` over the manifest's episodes (index i = manifest.episodes[i]),
    for training code that builds its own map-style dataset from the manifest's episode ids."""
    import torch
    from torch.utils.data import WeightedRandomSampler

    weights = torch.tensor([e.weight for e in manifest.episodes], dtype=torch.double)
    generator = torch.Generator().manual_seed(seed)
    return WeightedRandomSampler(weights, num_samples=num_samples, replacement=True, generator=generator)
