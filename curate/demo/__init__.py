"""The demo world: a deterministic generator of realistic demonstrations, and `curate demo` to build a lake."""

from curate.demo.build import DemoReport, build_demo
from curate.demo.world import DemoEpisode, build_world

__all__ = ["DemoEpisode", "DemoReport", "build_demo", "build_world"]
