"""Logins for the UI when it is shared: a users file of salted PBKDF2 hashes, each user a viewer or an editor.

On 127.0.0.1 the UI needs no login; bound to any other address it refuses to start without a users file.

    curate ui-user add alice --role editor --users users.json   # prompts for the password
    curate ui --lake L --host 0.0.0.0 --users users.json

File format (JSON)::

    {"users": {"alice": {"role": "editor", "password": "pbkdf2_sha256$600000$<salt hex>$<hash hex>"}}}
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from curate.errors import ConfigError

Role = Literal["viewer", "editor"]
ROLES: tuple[str, ...] = ("viewer", "editor")
USERS_ENV = "CURATE_UI_USERS"
ITERATIONS = 600_000
_NAME = re.compile(r"^[A-Za-z0-9_.@\-]{1,64}$")


@dataclass(frozen=True)
class User:
    name: str
    role: Role

    @property
    def can_edit(self) -> bool:
        return self.role == "editor"


def hash_password(password: str, *, iterations: int = ITERATIONS) -> str:
    """A salted PBKDF2-SHA256 hash in `pbkdf2_sha256$iterations$salt$hash` form."""
    if len(password) < 8:
        raise ConfigError("a password needs at least 8 characters")
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """True if `password` matches the stored hash (constant-time comparison)."""
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        got = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(iterations))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), digest)


def load_users(path: str | os.PathLike[str]) -> dict[str, dict[str, str]]:
    """The users of a users file: name -> {"role", "password"}.

    Raises:
        ConfigError: the file is missing, not JSON, or holds an unknown role or a malformed entry.
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"users file {p} does not exist; create it with `curate ui-user add NAME --users {p}`") \
            from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"users file {p} is not valid JSON ({exc})") from None
    users = data.get("users") if isinstance(data, dict) else None
    if not isinstance(users, dict):
        raise ConfigError(f'users file {p} needs a top-level {{"users": {{...}}}} object')
    for name, entry in users.items():
        if not isinstance(entry, dict) or entry.get("role") not in ROLES or not isinstance(entry.get("password"), str):
            raise ConfigError(f"users file {p}: user {name!r} needs a role ({'/'.join(ROLES)}) and a password hash")
    return users


def add_user(path: str | os.PathLike[str], name: str, password: str, *, role: Role = "viewer") -> None:
    """Add or replace a user in a users file (created if absent, written with mode 0600)."""
    if not _NAME.match(name):
        raise ConfigError(f"user name {name!r} may only use letters, digits and _.@- (1-64 characters)")
    if role not in ROLES:
        raise ConfigError(f"role {role!r} is not one of {', '.join(ROLES)}")
    p = Path(path)
    users = load_users(p) if p.exists() else {}
    users[name] = {"role": role, "password": hash_password(password)}
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text(json.dumps({"users": users}, indent=2))
    tmp.chmod(0o600)
    tmp.replace(p)


def authenticate(users: dict[str, dict[str, str]], name: str, password: str) -> User | None:
    """The user if name and password match, else None (same work either way, so timing tells nothing)."""
    entry = users.get(name)
    stored = entry["password"] if entry else "pbkdf2_sha256$1$00$00"
    ok = verify_password(password, stored)
    if entry is None or not ok:
        return None
    return User(name=name, role=entry["role"])  # type: ignore[arg-type]


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, users_file: str | None) -> None:
    """Refuse to expose the UI beyond this machine without logins.

    Raises:
        ConfigError: `host` is not loopback and no users file is given.
    """
    if not is_loopback(host) and not users_file:
        raise ConfigError(
            f"--host {host} exposes the UI beyond this machine, which requires logins: create a users file with "
            "`curate ui-user add NAME --role editor --users users.json` and pass `--users users.json`"
        )
    if users_file:
        load_users(users_file)
