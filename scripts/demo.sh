#!/usr/bin/env bash
# Install, then run the function once on the local emulators: `scripts/demo.sh [IMAGE]`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m image_pipeline demo "$@"
