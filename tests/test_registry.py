"""The connector registry and protocol, exercised by a plugin connector that touches every hook."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors import BadEpisode, Connector, SourceOptions, registry
from curate.ingest import ingest
from curate.lake import Lake
from schemas import Episode
from tests.helpers import make_episode


class JsonlConnector(Connector):
    """A toy format: a directory of `*.jsonl` files, one episode per line ({"i": n} or anything else = bad)."""

    name = "test_jsonl"
    description = "toy JSONL episodes (tests only)"

    def probe(self, uri: str) -> bool:
        path = Path(uri)
        return path.is_dir() and any(path.glob("*.jsonl"))

    def list_units(self, uri: str, options: SourceOptions) -> list[str]:
        return sorted(str(p) for p in Path(uri).glob("*.jsonl"))

    def episodes(self, unit: str, options: SourceOptions) -> Iterator[Episode | BadEpisode]:
        for line_no, line in enumerate(Path(unit).read_text().splitlines()):
            try:
                record = json.loads(line)
                yield make_episode(int(record["i"]), dataset=options.dataset or "toy", n_steps=3)
            except (ValueError, KeyError) as exc:
                yield BadEpisode(file=unit, record=str(line_no), reason=f"not a toy episode: {exc}")


@pytest.fixture
def toy_connector():
    registry.register(JsonlConnector)
    yield JsonlConnector
    registry._registry.pop(JsonlConnector.name, None)


@pytest.fixture
def toy_source(tmp_path):
    root = tmp_path / "toy"
    root.mkdir()
    (root / "a.jsonl").write_text('{"i": 0}\n{"i": 1}\n')
    (root / "b.jsonl").write_text('{"i": 2}\nnot json\n{"i": 3}\n')
    return root


def test_a_registered_connector_is_listed_detected_and_ingested(toy_connector, toy_source, tmp_path):
    assert "test_jsonl" in registry.names()
    assert registry.detect(str(toy_source)) == ["test_jsonl"]
    lake_uri = str(tmp_path / "lake")
    report = ingest([str(toy_source)], lake=lake_uri)
    assert report.episodes == 4
    assert report.rejected == 1
    rejection = report.rejections[0]
    assert rejection.file.endswith("b.jsonl") and "not a toy episode" in rejection.reason
    assert Lake(lake_uri).count('dataset == "toy"') == 4


def test_reingesting_through_a_plugin_adds_nothing(toy_connector, toy_source, tmp_path):
    lake_uri = str(tmp_path / "lake")
    ingest([str(toy_source)], lake=lake_uri)
    version = Lake(lake_uri).version
    again = ingest([str(toy_source)], lake=lake_uri)
    assert again.episodes == 0 and again.unchanged == 4
    assert Lake(lake_uri).version == version


def test_a_second_connector_with_a_taken_name_is_refused(toy_connector):
    class Impostor(JsonlConnector):
        pass

    with pytest.raises(ValueError, match="already taken"):
        registry.register(Impostor)


def test_an_unknown_format_lists_the_known_ones():
    with pytest.raises(registry.UnknownConnectorError) as err:
        registry.get("no_such_format")
    assert "rlds" in str(err.value)


def test_every_builtin_connector_declares_itself():
    for name in registry.names():
        connector = registry.get(name)
        assert connector.name == name
        assert connector.description and connector.version
        assert connector.probe("/definitely/not/a/path") is False
