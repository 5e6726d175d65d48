"""The conformance suite every connector's test inherits.

A subclass names the connector and provides two fixtures; the base class checks the contract:

    class TestMyFormat(ConnectorConformance):
        format = "myformat"
        expected_episodes = 4          # in `sample` (None: do not check the count)
        expected_steps = 40            # total over `sample` (None: do not check)
        expected_rejected = 1          # bad episodes in `corrupted_sample`

        @pytest.fixture
        def sample(self, tmp_path) -> str:            # a small valid source, written by the test (seeded)
            return write_my_fixture(tmp_path)

        @pytest.fixture
        def corrupted_sample(self, tmp_path) -> str:  # the same with `expected_rejected` damaged episodes
            ...

Checks: the connector is registered; `probe` is true on its own sample and false on foreign sources (an empty
directory, a text file, a JSON file, and the samples of the other built-in formats this suite can write);
every episode validates (pydantic round trip + the engine's `check_episode`); ids and fingerprints are stable
across two runs; step counts match; a corrupted episode is reported and skipped while the rest ingests through
the engine; re-ingesting the same source adds nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import pytest

from connectors import registry
from connectors.base import BadEpisode, SourceOptions
from curate.ingest import check_episode, ingest
from curate.lake import Lake
from schemas import Episode


def read_all(fmt: str, uri: str, options: SourceOptions | None = None) -> tuple[list[Episode], list[BadEpisode]]:
    """Every episode and bad episode a connector yields for `uri`, through its own list_units/episodes."""
    options = options or SourceOptions()
    connector = registry.get(fmt)
    good: list[Episode] = []
    bad: list[BadEpisode] = []
    for unit in connector.list_units(uri, options):
        for item in connector.episodes(unit, options):
            (bad if isinstance(item, BadEpisode) else good).append(item)
    return good, bad


def _foreign_rlds(tmp: Path) -> str:
    from curate.demo.world import build_world
    from curate.demo.write_rlds import write

    return str(write(build_world(4, seed=1), tmp / "rlds"))


def _foreign_alfred(tmp: Path) -> str:
    from curate.demo.write_alfred import write

    return str(write(tmp / "alfred", trials=2, seed=1))


FOREIGN_WRITERS: dict[str, Callable[[Path], str]] = {"rlds": _foreign_rlds, "alfred": _foreign_alfred}
"""Built-in formats whose samples this suite writes itself; a connector's probe must refuse the others.
Other connector modules may add theirs here (format name -> writer of a small sample under a directory)."""


class ConnectorConformance:
    """Base class: subclass it as `Test<Format>` and provide the `sample` and `corrupted_sample` fixtures."""

    format: ClassVar[str] = ""
    expected_episodes: ClassVar[int | None] = None
    expected_steps: ClassVar[int | None] = None
    expected_rejected: ClassVar[int] = 1
    check_lake_round_trip: ClassVar[bool] = False
    """Opt in: every episode read back from the lake equals the connector's (steps and frame bytes included)."""

    @pytest.fixture
    def sample(self, tmp_path: Path) -> str:
        pytest.fail(f"{type(self).__name__} must provide a `sample` fixture")  # pragma: no cover

    @pytest.fixture
    def corrupted_sample(self, tmp_path: Path) -> str:
        pytest.fail(f"{type(self).__name__} must provide a `corrupted_sample` fixture")  # pragma: no cover

    @pytest.fixture
    def foreign_sources(self, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
        tmp = tmp_path_factory.mktemp("foreign")
        empty = tmp / "empty"
        empty.mkdir()
        text = tmp / "notes.txt"
        text.write_text("not a dataset\n")
        js = tmp / "data.json"
        js.write_text(json.dumps({"hello": [1, 2, 3]}))
        out = [str(empty), str(text), str(js), str(tmp / "does-not-exist")]
        for name, writer in FOREIGN_WRITERS.items():
            if name != self.format:
                out.append(writer(tmp / name))
        return out

    def test_connector_is_registered(self) -> None:
        assert self.format in registry.names()
        assert registry.get(self.format).name == self.format

    def test_probe_accepts_its_own_sample(self, sample: str) -> None:
        assert registry.get(self.format).probe(sample)
        assert self.format in registry.detect(sample)

    def test_probe_rejects_foreign_sources(self, foreign_sources: list[str]) -> None:
        connector = registry.get(self.format)
        accepted = [s for s in foreign_sources if connector.probe(s)]
        assert accepted == []

    def test_every_episode_validates(self, sample: str) -> None:
        good, bad = read_all(self.format, sample)
        assert bad == []
        assert good, "the sample yields no episode"
        for episode in good:
            assert check_episode(episode) is None
            again = Episode.model_validate(episode.model_dump())
            assert again.episode_id == episode.episode_id
            assert episode.source.format == self.format

    def test_episode_ids_are_stable_across_two_runs(self, sample: str) -> None:
        first, _ = read_all(self.format, sample)
        second, _ = read_all(self.format, sample)
        assert [(e.episode_id, e.source.fingerprint) for e in first] == [
            (e.episode_id, e.source.fingerprint) for e in second]
        assert len({e.episode_id for e in first}) == len(first)

    def test_step_counts_match(self, sample: str) -> None:
        good, _ = read_all(self.format, sample)
        for episode in good:
            assert len(episode.steps) == episode.n_steps
            assert [s.index for s in episode.steps] == list(range(episode.n_steps))
        if self.expected_episodes is not None:
            assert len(good) == self.expected_episodes
        if self.expected_steps is not None:
            assert sum(e.n_steps for e in good) == self.expected_steps

    def test_corrupted_episode_is_reported_and_skipped(self, sample: str, corrupted_sample: str,
                                                       tmp_path: Path) -> None:
        report = ingest([corrupted_sample], lake=str(tmp_path / "lake"), format=self.format)
        assert report.rejected == self.expected_rejected, report.to_dict()["rejections"]
        for rejection in report.rejections:
            assert rejection.reason and rejection.file
        assert report.episodes > 0
        if self.expected_episodes is not None:
            assert report.episodes == self.expected_episodes - self.expected_rejected
        assert Lake(str(tmp_path / "lake")).count() == report.episodes

    def test_reingest_adds_nothing(self, sample: str, tmp_path: Path) -> None:
        lake = str(tmp_path / "lake")
        first = ingest([sample], lake=lake, format=self.format)
        version = Lake(lake).version
        second = ingest([sample], lake=lake, format=self.format)
        assert second.episodes == 0
        assert second.unchanged == first.episodes
        assert Lake(lake).version == version
        assert Lake(lake).count() == first.episodes

    def test_episodes_read_back_from_the_lake_equal_the_connectors(self, sample: str, tmp_path: Path) -> None:
        if not self.check_lake_round_trip:
            pytest.skip("round trip through the lake not enabled for this connector (check_lake_round_trip)")
        good, _ = read_all(self.format, sample)
        lake = str(tmp_path / "lake")
        ingest([sample], lake=lake, format=self.format)
        stored = Lake(lake)
        skip = {"ingested_at", "quality_flags", "steps"}
        for episode in good:
            back = stored.episode(episode.episode_id, frames="eager")
            assert back.model_dump(exclude=skip) == episode.model_dump(exclude=skip)
            assert len(back.steps) == len(episode.steps)
            for a, b in zip(back.steps, episode.steps, strict=True):
                assert a.model_dump(exclude={"frames"}) == b.model_dump(exclude={"frames"})
                assert [(f.camera, f.format, f.read_bytes()) for f in a.frames] == [
                    (f.camera, f.format, f.read_bytes()) for f in b.frames]
