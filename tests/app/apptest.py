"""Helpers for driving the UI with Streamlit's AppTest (headless, in-process)."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.app.conftest import APP_MAIN


def open_page(page: str | None = None, *, query: dict[str, str] | None = None, state: dict | None = None) -> AppTest:
    """Run the entrypoint (router + shared frame) on `page` (e.g. "views/browse.py")."""
    at = AppTest.from_file(str(APP_MAIN), default_timeout=90)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    for key, value in (state or {}).items():
        at.session_state[key] = value
    if page is not None:
        at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    """All markdown, captions, titles, infos, warnings and errors of a run, as one string to search."""
    parts = []
    for group in (at.title, at.markdown, at.caption, at.info, at.warning, at.error, at.success, at.subheader):
        parts.extend(str(e.value) for e in group)
    return "\n".join(parts)


def table_with(at: AppTest, column: str):
    """The first dataframe of the run that has `column` (as pandas)."""
    for frame in at.dataframe:
        value = frame.value
        if column in value.columns:
            return value
    raise AssertionError(f"no table with a {column!r} column; tables: {[list(f.value.columns) for f in at.dataframe]}")
