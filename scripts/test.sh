#!/usr/bin/env bash
# Installs everything the tests need (Python packages in .venv, the anvil node from npm) and runs them all.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
# anvil ships as a per-platform optional dependency of @foundry-rs/anvil; its postinstall is not needed.
# `npm install` (not `npm ci`): the lock file pins the version and hashes, but npm records only this
# platform's optional binary in it, which `npm ci` rejects as out of sync.
npm install --ignore-scripts --no-audit --no-fund --loglevel=error
# Debian's chromium for the one real-browser check (playwright drives it; it never downloads a browser).
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
exec .venv/bin/python -m pytest -q "$@"
