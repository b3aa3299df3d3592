#!/usr/bin/env bash
# Install, check lint, formatting and types (configured in pyproject.toml), then run the whole test suite (it starts
# and stops the local emulators itself). Any failing step fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
