#!/usr/bin/env bash
# Create .venv (if missing) and install everything the demo, the tests and the benchmarks need.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "error: Python 3.11 or newer is needed (found $("$python" --version 2>&1))" >&2; exit 1; }
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
# deploy.sh is linted by a test; it skips (saying so) where shellcheck cannot be installed.
if ! command -v shellcheck >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  { apt-get update -qq && apt-get install -y -qq shellcheck; } >/dev/null 2>&1 \
    || echo "note: shellcheck could not be installed; its test will be skipped" >&2
fi
