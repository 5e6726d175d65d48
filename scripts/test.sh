#!/usr/bin/env bash
# One command for the whole suite: set up, lint, and run every test offline.
# Tests run in a fresh network namespace with only loopback (unshare -rn) where the platform allows it,
# so no test can reach outside; where it does not, they run as they are and still pass.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1

# Browser tests need Debian's chromium (never a downloaded browser). Install it when we can.
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "note: could not install chromium; browser tests will be skipped" >&2
fi

.venv/bin/ruff check . || exit 1

export HF_HUB_OFFLINE=1 RAY_USAGE_STATS_ENABLED=0 CURATE_TEST_OFFLINE=1 PYTHONDONTWRITEBYTECODE=1

offline() {
  # a fresh network namespace with only loopback, where the platform allows it
  if command -v unshare >/dev/null 2>&1 && unshare -rn true 2>/dev/null; then
    unshare -rn sh -c 'ip link set lo up 2>/dev/null || true; exec "$@"' sh "$@"
  else
    echo "note: cannot make an offline network namespace here; running tests without it" >&2
    "$@"
  fi
}

# Ray starts its own cluster processes: its tests run in a pytest process of their own, with a tighter
# per-test timeout, so nothing else in the suite shares a process with a Ray driver.
offline .venv/bin/python -m pytest -m "not ray" -p no:cacheprovider "$@"
main=$?
offline .venv/bin/python -m pytest -m ray --timeout 600 -p no:cacheprovider "$@"
ray=$?

# pytest exits 5 when it collected nothing: fine for one half, a failure if the whole suite is empty
if [ "$main" = 5 ] && [ "$ray" = 5 ]; then
  echo "pytest collected no tests" >&2
  exit 1
fi
for code in "$main" "$ray"; do
  case "$code" in 0|5) ;; *) exit "$code" ;; esac
done
exit 0
