"""What every command shares: the --lake and --json options, output helpers, and user-error handling."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console

from curate.lake import LAKE_ENV, Lake, default_lake_uri

console = Console(stderr=True)
"""Progress and human messages go to stderr, so `--json` output on stdout stays machine-readable."""

LakeOption = Annotated[
    str | None,
    typer.Option("--lake", "-l", help=f"Lake directory or URI (default: ${LAKE_ENV} or ./lake).", show_default=False),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON with stable keys.")]
WhereOption = Annotated[
    str | None,
    typer.Option("--where", "-w", help='Filter, e.g. \'dataset == "bridge" and n_steps > 20\'.', show_default=False),
]


def open_lake(uri: str | None, *, read_only: bool = False) -> Lake:
    """Open an existing lake (errors are CurateErrors, turned into one line by `main`)."""
    return Lake(uri or default_lake_uri(), read_only=read_only)


def print_json(data: Any) -> None:
    """Write JSON to stdout (dates and other objects as strings)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")
