"""Run Streamlit on app/main.py with the page router only: `python -m app.serve [streamlit run options]`.

Streamlit treats a `pages/` folder beside the main script as a legacy multipage app until the first run calls
`st.navigation`; a first request to /browse would then bypass the router (and its login). Declaring the
router up front closes that gap.
"""

from __future__ import annotations

import sys
from pathlib import Path

MAIN = Path(__file__).resolve().parent / "main.py"


def main(argv: list[str]) -> None:
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.web import cli

    PagesManager.uses_pages_directory = False
    sys.argv = ["streamlit", "run", str(MAIN), *argv]
    cli.main()


if __name__ == "__main__":
    main(sys.argv[1:])
