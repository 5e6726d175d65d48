"""The `curate` command line: thin commands over engine functions.

    curate demo --no-ui                      # build the demo world into ./lake
    curate stats --json                      # totals per dataset
    curate ls --where 'instruction ~ "cup"'  # list episodes matching a filter
    curate show EPISODE_ID                   # one episode, its steps and labels
    curate doctor                            # check the lake's integrity

Every command takes --lake (default $CURATE_LAKE or ./lake); every command that prints data takes --json.
A user's mistake (bad filter, unknown id, not a lake) prints one line and exits non-zero.
"""

from __future__ import annotations

import importlib
import sys

import typer

from curate.errors import CurateError

app = typer.Typer(
    name="curate",
    help="Curate robot demonstration data: ingest, browse, relabel, audit, mix and export.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

COMMAND_MODULES: tuple[str, ...] = (
    # one module per line; importing it adds its commands to `app`
    "curate.cli.demo_cmd",
    "curate.cli.ingest_cmd",
    "curate.cli.lake_cmds",
    "curate.cli.connectors_cmd",
    "curate.cli.ui_cmd",
    "curate.cli.mix_cmds",
    "curate.cli.embed_cmds",
)
for _module in COMMAND_MODULES:
    importlib.import_module(_module)


def main() -> None:
    """Entry point: run the app, turning CurateErrors into a one-line message and their exit code."""
    try:
        code = app(standalone_mode=False)  # click returns typer.Exit's code here instead of raising
        if isinstance(code, int) and code:
            sys.exit(code)
    except CurateError as exc:
        typer.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("Aborted.", err=True)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors carry their own exit code
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
