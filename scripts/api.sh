#!/usr/bin/env bash
# Serves the /stats API (python -m core.api) from the checkout's .venv; arguments pass through
# (--database-url, --host, --port, --workers, --no-access-log). Settings: DATABASE_URL, API_CORS_ORIGINS, API_CACHE_TTL.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
exec .venv/bin/python -m core.api "$@"
