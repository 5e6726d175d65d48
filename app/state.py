"""What every page shares: the settings `curate ui` passed, the lake handle, the signed-in user, cached queries.

`curate ui` passes its options as environment variables (CURATE_UI_*), so a page can also be run on its own by
Streamlit's AppTest. Resources (the Lake handle) are cached apart from data; cached data is keyed on the lake
version and the label version, so a relabel or an ingest shows up on the next rerun.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import streamlit as st

from curate import ui_service as ui
from curate.auth import User, authenticate, load_users
from curate.lake import Lake, default_lake_uri
from schemas import Episode

LAKES_ENV = "CURATE_UI_LAKES"
READ_ONLY_ENV = "CURATE_UI_READ_ONLY"
USERS_ENV = "CURATE_UI_USERS"


@dataclass(frozen=True)
class Settings:
    lakes: tuple[str, ...]
    read_only: bool
    users_file: str | None


def parse_lakes(raw: str) -> tuple[str, ...]:
    """The lakes of `CURATE_UI_LAKES`: a JSON list (what `curate ui` writes), or one lake path or URI. Not split on
    ":" (os.pathsep), which would cut `s3://bucket/lake` in two."""
    if raw.lstrip().startswith("["):
        return tuple(str(x) for x in json.loads(raw) if x)
    return (raw,) if raw else ()


def settings() -> Settings:
    """The options `curate ui` was started with (lakes are fixed at start; users cannot type a path)."""
    lakes = parse_lakes(os.environ.get(LAKES_ENV) or default_lake_uri())
    return Settings(lakes=lakes, read_only=os.environ.get(READ_ONLY_ENV) == "1",
                    users_file=os.environ.get(USERS_ENV) or None)


@st.cache_resource(show_spinner=False)
def _lake(uri: str, read_only: bool) -> Lake:
    return Lake(uri, read_only=read_only)


def lake() -> Lake:
    """The lake picked in the sidebar, refreshed so it sees commits made since the last rerun."""
    cfg = settings()
    uri = st.session_state.get("lake_uri")
    if uri not in cfg.lakes:
        uri = cfg.lakes[0]
    handle = _lake(uri, cfg.read_only)
    return handle.refresh()


def versions(handle: Lake) -> tuple[int, int]:
    """(lake version, label version): the key of every cached query."""
    return handle.version, handle.labels_version


def lake_picker() -> None:
    """The shared sidebar picker over the lakes `curate ui` was given."""
    cfg = settings()
    if len(cfg.lakes) > 1:
        st.sidebar.selectbox("Lake", cfg.lakes, key="lake_uri")
    else:
        st.session_state["lake_uri"] = cfg.lakes[0]
        st.sidebar.caption(f"Lake: `{cfg.lakes[0]}`")
    if cfg.read_only:
        st.sidebar.info("Read-only: editing is disabled.", icon=":material/lock:")


def login() -> User:
    """The signed-in user; asks for a login (and stops the page) when a users file is configured."""
    cfg = settings()
    if cfg.users_file:
        current = st.session_state.get("user")
        if isinstance(current, User):
            return current
        users = load_users(cfg.users_file)
        st.title("Sign in")
        with st.form("login"):
            name = st.text_input("User", key="login_name")
            password = st.text_input("Password", type="password", key="login_password")
            submitted = st.form_submit_button("Sign in")
        if submitted:
            found = authenticate(users, name, password)
            if found is None:
                st.error("Wrong user name or password.")
            else:
                st.session_state["user"] = found
                st.rerun()
        st.stop()
    return current_user()


def current_user() -> User:
    """Who acts in this session (no widgets: pages call this after the entrypoint's `frame`)."""
    cfg = settings()
    if cfg.users_file:
        found = st.session_state.get("user")
        if not isinstance(found, User):
            st.error("Sign in first: open the app's start page.")
            st.stop()
        return found
    name = (st.session_state.get("author") or os.environ.get("USER") or "curator").strip() or "curator"
    return User(name=name, role="editor")


def can_edit(current: User) -> bool:
    """Editing controls show only for editors on a writable lake."""
    return current.can_edit and not settings().read_only


def author_box(current: User) -> None:
    """Sidebar: who is signed in (or, without logins, the name written into label events)."""
    if settings().users_file:
        st.sidebar.caption(f"Signed in as **{current.name}** ({current.role})")
        if st.sidebar.button("Sign out", key="sign_out"):
            st.session_state.pop("user", None)
            st.rerun()
    elif not settings().read_only:
        st.session_state.setdefault("author", current.name)
        st.sidebar.text_input("Your name (recorded in label history)", key="author")


# ------------------------------------------------------------------------------------------------ cached queries
@st.cache_data(show_spinner=False, max_entries=64)
def facets(uri: str, version: int, labels_version: int) -> ui.Facets:
    return ui.facets(_lake(uri, settings().read_only))


@st.cache_data(show_spinner=False, max_entries=256)
def browse_page(uri: str, version: int, labels_version: int, where: str | None, page: int,
                page_size: int) -> ui.BrowsePage:
    return ui.browse_page(_lake(uri, settings().read_only), where, page=page, page_size=page_size)


@st.cache_data(show_spinner=False, max_entries=4096)
def _thumbnail(uri: str, version: int, episode_id: str, step: int, camera: str, size: int) -> bytes | None:
    return ui.thumbnail_jpeg(_lake(uri, settings().read_only), episode_id, step=step, camera=camera, size=size)


def thumbnail(handle: Lake, row: dict, *, size: int = 192) -> bytes | None:
    """The keyframe thumbnail of an episode row (needs its episode_id, n_steps and cameras)."""
    step, camera = ui.keyframe(row)
    if row.get("match_camera") is not None:  # a search hit: show the keyframe that matched
        step, camera = row["match_step"], row["match_camera"]
    if camera is None:
        return None
    return _thumbnail(handle.uri, handle.version, row["episode_id"], step, camera, size)


@st.cache_resource(show_spinner=False, max_entries=8)
def episode_steps(uri: str, version: int, episode_id: str) -> Episode:
    """An episode with its steps (frames load on first view); labels are read fresh by the page."""
    return _lake(uri, settings().read_only).episode(episode_id, frames="lazy")


def frame() -> User:
    """The entrypoint's shared frame: lake picker, login, author box. Returns the user."""
    lake_picker()
    current = login()
    author_box(current)
    return current


def context() -> tuple[Lake, User]:
    """What a page needs: the picked lake (fresh) and the acting user."""
    return lake(), current_user()
