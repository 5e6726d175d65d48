#!/usr/bin/env bash
# One command for a newcomer: set up, build the demo lake in ./lake, and open the UI (pass --no-ui to skip it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/curate demo --lake "${CURATE_LAKE:-./lake}" "$@"
