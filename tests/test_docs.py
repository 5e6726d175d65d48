"""Docs that cannot drift: every CLI command is documented, every doc the README names exists."""

from __future__ import annotations

import re

from curate.cli.main import app
from tests.helpers import REPO


def _commands() -> list[str]:
    import typer.main

    group = typer.main.get_command(app)
    return sorted(group.commands)  # type: ignore[attr-defined]


def test_every_cli_command_appears_in_the_readme_or_the_docs():
    text = (REPO / "README.md").read_text() + "".join(p.read_text() for p in (REPO / "docs").rglob("*.md"))
    missing = [c for c in _commands() if f"curate {c}" not in text]
    assert not missing, f"commands with no `curate <name>` in README.md or docs/: {missing}"


def test_every_doc_the_readme_and_architecture_name_exists():
    for source in ("README.md", "docs/architecture.md"):
        text = (REPO / source).read_text()
        for path in sorted(set(re.findall(r"docs/[\w/-]+\.md", text))):
            if "*" in path:
                continue
            assert (REPO / path).exists(), f"{source} names {path}, which does not exist"


def test_the_readme_test_command_is_what_ci_runs():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in readme
    assert "scripts/test.sh" in ci
