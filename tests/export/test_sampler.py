"""The weighted sampler draws from the lake with a manifest's weights, deterministically for a seed."""

from __future__ import annotations

import collections
import itertools

import numpy as np
import pytest
import torch

from curate.lake import Lake
from curate.mixtures import resolve
from curate.sampler import LakeMixtureDataset, draw_probabilities, weighted_sampler
from schemas.mixture import Manifest, MixtureSpec


@pytest.fixture
def steps_uniform(export_lake: Lake) -> Manifest:
    return resolve(MixtureSpec(name="u", strategy="uniform", unit="steps", quality=[]), export_lake)


def test_same_seed_same_stream_other_seed_other_stream(steps_uniform: Manifest) -> None:
    def draw(seed: int) -> list[tuple[str, int]]:
        return [(s["episode_id"], s["step"]) for s in LakeMixtureDataset(steps_uniform, seed=seed, images="none",
                                                                          num_samples=60)]

    assert draw(1) == draw(1)
    assert draw(1) != draw(2)


def test_draws_follow_the_requested_group_shares(steps_uniform: Manifest) -> None:
    data = LakeMixtureDataset(steps_uniform, seed=0, images="none", num_samples=4000)
    counts = collections.Counter(s["dataset"] for s in data)
    assert counts["aloha"] / 4000 == pytest.approx(0.5, abs=0.03)  # aloha has 20 of 55 steps but gets half


def test_samples_carry_actions_current_instruction_and_decoded_images(export_lake: Lake,
                                                                      steps_uniform: Manifest) -> None:
    sample = next(iter(LakeMixtureDataset(steps_uniform, seed=3, images="array", num_samples=1)))
    ep = export_lake.episode(sample["episode_id"], frames="eager")
    step = ep.steps[sample["step"]]
    assert sample["action"].tolist() == step.action and sample["instruction"] == ep.instruction
    for cam, img in sample["images"].items():
        assert img.dtype == np.uint8 and img.shape == (16, 16, 3)
        assert cam in {c.name for c in ep.cameras}
    raw = next(iter(LakeMixtureDataset(steps_uniform, seed=3, images="bytes", num_samples=1)))
    assert raw["images"] == {f.camera: f.read_bytes() for f in step.frames}


def test_episode_mode_divides_weights_by_episode_size(steps_uniform: Manifest) -> None:
    ids, p = draw_probabilities(steps_uniform, mode="episodes")
    by_id = {e.episode_id: e for e in steps_uniform.episodes}
    expected = np.array([by_id[i].weight / by_id[i].units for i in ids])
    assert p == pytest.approx(expected / expected.sum())
    sample = next(iter(LakeMixtureDataset(steps_uniform, mode="episodes", images="none", num_samples=1)))
    assert sample["action"].shape[0] == by_id[sample["episode_id"]].units


def test_dataloader_workers_draw_their_own_seeded_streams(steps_uniform: Manifest) -> None:
    data = LakeMixtureDataset(steps_uniform, seed=5, images="none", num_samples=12)
    loader = torch.utils.data.DataLoader(data, batch_size=None, num_workers=2, multiprocessing_context="spawn")
    got = [(s["episode_id"], int(s["step"])) for s in loader]

    def worker_stream(worker: int) -> list[tuple[str, int]]:
        alone = LakeMixtureDataset(steps_uniform, seed=5, images="none", num_samples=12)
        alone._worker = lambda: (worker, 2)  # what get_worker_info() says inside worker `worker` of 2
        return [(s["episode_id"], s["step"]) for s in alone]

    w0, w1 = worker_stream(0), worker_stream(1)
    assert len(w0) == len(w1) == 6 and w0 != w1
    assert got == [x for pair in zip(w0, w1, strict=True) for x in pair]  # the DataLoader takes turns


def test_weighted_random_sampler_follows_manifest_weights(steps_uniform: Manifest) -> None:
    sampler = weighted_sampler(steps_uniform, num_samples=5000, seed=0)
    idx = list(itertools.islice(iter(sampler), 5000))
    share = sum(steps_uniform.episodes[i].dataset == "aloha" for i in idx) / 5000
    assert share == pytest.approx(0.5, abs=0.03)
    assert list(weighted_sampler(steps_uniform, num_samples=50, seed=1)) == list(
        weighted_sampler(steps_uniform, num_samples=50, seed=1))
