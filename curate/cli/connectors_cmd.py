"""`curate connectors`: which source formats this installation reads (built-ins and plugins)."""

from __future__ import annotations

from rich.table import Table

from connectors import registry
from curate.cli.common import JsonOption, console, print_json
from curate.cli.main import app


@app.command("connectors")
def list_connectors(json_out: JsonOption = False) -> None:
    """List the installed connectors: format name, version and what it reads."""
    rows = []
    for name in registry.names():
        cls = type(registry.get(name))
        rows.append({"format": name, "version": cls.version, "module": cls.__module__,
                     "description": cls.description})
    if json_out:
        print_json({"connectors": rows})
        return
    table = Table("format", "version", "reads")
    for row in rows:
        table.add_row(row["format"], row["version"], row["description"])
    console.print(table)
