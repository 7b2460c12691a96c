#!/usr/bin/env bash
# Installs everything the tests need (Python packages in .venv, the anvil node from npm, Debian's chromium
# and postgresql) and runs them all, on SQLite and on PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
# anvil ships as a per-platform optional dependency of @foundry-rs/anvil; its postinstall is not needed.
# `npm install` (not `npm ci`): the lock file pins the version and hashes, but npm records only this
# platform's optional binary in it, which `npm ci` rejects as out of sync.
npm install --ignore-scripts --no-audit --no-fund --loglevel=error
# From Debian: chromium for the one real-browser check (playwright drives it; it never downloads a
# browser), and postgresql, whose server binaries the suite uses to start a throw-away cluster on
# 127.0.0.1 for the PostgreSQL run of every database test (tests/postgres.py; the package's own
# cluster is not used).
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null 2>&1 || missing+=(postgresql)
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The house's checks first (pyproject.toml): lint over the whole tree, strict types over core/.
.venv/bin/python -m ruff check .
.venv/bin/python -m mypy
# One test process per core (TEST_WORKERS overrides), each whole test file on one process so its
# module-wide databases and servers are made once, the longest files first (tests/conftest.py's
# LONGEST_FIRST; xdist would otherwise order files by their number of tests, which left the few
# long browser and fault files for last, on one process while the other idled).
exec .venv/bin/python -m pytest -q -n "${TEST_WORKERS:-auto}" --dist loadfile --no-loadscope-reorder "$@"
