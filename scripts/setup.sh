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
# `dev` needs the Google Cloud CLI's Pub/Sub emulator (fake-gcs-server publishes upload notifications to it); its
# tests skip, saying so, where it cannot be installed.
pubsub_emulator_installed() {
  local gcloud
  gcloud="$(command -v gcloud)" || return 1
  [ -x "$(dirname "$(readlink -f "$gcloud")")/../platform/pubsub-emulator/bin/cloud-pubsub-emulator" ]
}
if ! pubsub_emulator_installed; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && dpkg -s google-cloud-cli >/dev/null 2>&1; then
    { apt-get update -qq && apt-get install -y -qq google-cloud-cli-pubsub-emulator; } >/dev/null 2>&1 || true
  elif command -v gcloud >/dev/null 2>&1; then
    gcloud components install pubsub-emulator --quiet >/dev/null 2>&1 || true
  fi
  pubsub_emulator_installed \
    || echo "note: the Pub/Sub emulator (gcloud component pubsub-emulator) could not be installed; dev and its tests need it" >&2
fi
# The local page is tested in headless Chromium from the distribution's packages; the test skips (saying so) without.
if ! command -v chromedriver >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  { apt-get update -qq && apt-get install -y -qq chromium chromium-driver; } >/dev/null 2>&1 \
    || echo "note: chromium could not be installed; the page's browser test will be skipped" >&2
fi
# The Firebase JS SDK (npm `firebase`, the version tests/firebase_clients/package.json pins) for the client-SDK tests,
# into the git-ignored .cache/npm-clients/, once per version; those tests skip, saying so, without Node.js and npm.
if command -v npm >/dev/null 2>&1; then
  clients=.cache/npm-clients
  wanted="$(node -p 'require("./tests/firebase_clients/package.json").dependencies.firebase')"
  installed="$(node -p "require('./$clients/node_modules/firebase/package.json').version" 2>/dev/null || true)"
  if [ "$installed" != "$wanted" ]; then
    mkdir -p "$clients" && cp tests/firebase_clients/package.json "$clients/"
    npm install --prefix "$clients" --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null \
      || echo "note: npm could not install firebase $wanted; the client-SDK tests will be skipped" >&2
  fi
fi
