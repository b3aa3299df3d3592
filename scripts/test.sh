#!/usr/bin/env bash
# Install, then run the whole test suite (it starts and stops the local emulators itself).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
