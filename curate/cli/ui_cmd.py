"""`curate ui`: serve the Streamlit UI over one or more lakes, and `curate ui-user` to manage its logins.

    curate ui --lake ./lake                          # http://127.0.0.1:8501, no login on loopback
    curate ui --lake ./lake --read-only              # no editing controls; the lake refuses writes
    curate ui-user add alice --role editor --users users.json
    curate ui --lake ./lake --host 0.0.0.0 --users users.json   # beyond localhost a login is required
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from curate.auth import ROLES, add_user, check_exposure, load_users
from curate.cli.common import console
from curate.cli.main import app
from curate.errors import ConfigError
from curate.lake import Lake, default_lake_uri

APP_MAIN = Path(__file__).resolve().parents[2] / "app" / "main.py"
DEFAULT_PORT = 8501
MAX_UPLOAD_MB = 8


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def ui_command(lakes: list[str], *, host: str = "127.0.0.1", port: int = DEFAULT_PORT, read_only: bool = False,
               users_file: str | None = None, mixtures_dir: str | None = None) -> tuple[list[str], dict[str, str]]:
    """The `streamlit run` command line and environment that serve the UI (checked, not started).

    Raises:
        NotALakeError: a lake does not exist.
        ConfigError: the host is not loopback and no users file is given, or the users file is invalid.
    """
    if not lakes:
        lakes = [default_lake_uri()]
    for uri in lakes:
        Lake(uri, read_only=True)  # fail now, with the usual message, rather than inside the page
    check_exposure(host, users_file)
    if not APP_MAIN.exists():
        raise ConfigError(f"the UI files are missing ({APP_MAIN}); reinstall curate-robot-data")
    env = dict(os.environ)
    env["CURATE_UI_LAKES"] = json.dumps(list(lakes))  # a JSON list: URIs hold ":", so no os.pathsep join
    env["CURATE_UI_READ_ONLY"] = "1" if read_only else "0"
    if users_file:
        env["CURATE_UI_USERS"] = str(Path(users_file).resolve())
    else:
        env.pop("CURATE_UI_USERS", None)
    env["CURATE_UI_MIXTURES"] = str(Path(mixtures_dir or "mixtures").resolve())
    root = str(APP_MAIN.parents[1])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP_MAIN),
           "--server.address", host, "--server.port", str(port), "--server.headless", "true",
           "--browser.gatherUsageStats", "false", "--server.maxUploadSize", str(MAX_UPLOAD_MB),
           "--server.enableXsrfProtection", "true", "--global.developmentMode", "false",
           "--client.toolbarMode", "viewer", "--server.fileWatcherType", "none"]
    return cmd, env


def launch(lake_uri: str | list[str], *, host: str = "127.0.0.1", port: int = DEFAULT_PORT, read_only: bool = False,
           users_file: str | None = None, mixtures_dir: str | None = None,
           wait: bool = True) -> subprocess.Popen[bytes]:
    """Start the UI server (used by `curate ui` and `curate demo`).

    With `wait` (the CLI) this process becomes the server (exec), so Ctrl-C or a signal to its pid stops it;
    otherwise the server is started as a child process and returned (stop it with `.terminate()`).
    """
    lakes = [lake_uri] if isinstance(lake_uri, str) else list(lake_uri)
    cmd, env = ui_command(lakes, host=host, port=port, read_only=read_only, users_file=users_file,
                          mixtures_dir=mixtures_dir)
    console.print(f"[bold]curate ui[/] serving {', '.join(lakes)} at http://{host}:{port}"
                  + (" (read-only)" if read_only else "") + (" with logins" if users_file else "")
                  + " — Ctrl-C to stop")
    if wait:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(cmd[0], cmd, env)
    return subprocess.Popen(cmd, env=env, cwd=str(APP_MAIN.parents[1]))


@app.command()
def ui(
    lake: Annotated[list[str] | None, typer.Option("--lake", "-l", help="Lake to serve; repeat to offer several "
                                                   "(default: $CURATE_LAKE or ./lake).", show_default=False)] = None,
    host: Annotated[str, typer.Option(help="Address to bind; anything but loopback requires --users.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to serve on.")] = DEFAULT_PORT,
    read_only: Annotated[bool, typer.Option("--read-only", help="Hide editing controls; refuse writes.")] = False,
    users: Annotated[str | None, typer.Option("--users", help="Users file (see `curate ui-user add`); enables "
                                              "login with viewer/editor roles.", envvar="CURATE_UI_USERS",
                                              show_default=False)] = None,
    mixtures_dir: Annotated[str, typer.Option("--mixtures-dir", help="Where the Mixtures page saves specs and "
                                              "exports.")] = "mixtures",
) -> None:
    """Browse, view, search, relabel, audit and mix in the browser (Streamlit)."""
    launch(lake or [default_lake_uri()], host=host, port=port, read_only=read_only, users_file=users,
           mixtures_dir=mixtures_dir)


users_app = typer.Typer(help="Manage the UI's logins (a JSON users file with hashed passwords).",
                        no_args_is_help=True)
app.add_typer(users_app, name="ui-user")


@users_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="User name.")],
    users: Annotated[str, typer.Option("--users", help="Users file (created if absent).")] = "users.json",
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}.")] = "viewer",
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True,
                                          envvar="CURATE_UI_PASSWORD", help="Prompted when not given.")] = "",
) -> None:
    """Add (or replace) a user with a role; the password is stored as a salted PBKDF2 hash."""
    add_user(users, name, password, role=role)  # type: ignore[arg-type]
    console.print(f"user {name} ({role}) saved in {users}")


@users_app.command("list")
def user_list(users: Annotated[str, typer.Option("--users", help="Users file.")] = "users.json") -> None:
    """List the users of a users file and their roles."""
    for name, entry in sorted(load_users(users).items()):
        typer.echo(f"{name}\t{entry['role']}")
