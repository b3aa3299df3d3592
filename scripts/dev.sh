#!/usr/bin/env bash
# Install, then run the local loop until Ctrl-C: `bash scripts/dev.sh [--free-ports] [--firestore-host HOST:PORT]`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m image_pipeline dev "$@"
