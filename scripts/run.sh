#!/usr/bin/env bash
# Installs the runtime packages in .venv and opens the app (on the demo database unless configured).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
# An empty database gets the demo (BUILD_DEMO=0: not; DEMO_DAYS: its length), built in the background
# from now on, beside the server's start-up rather than from the first page view; the app shows its
# progress and starts no second build. It stops with the server (this shell's process, after exec).
.venv/bin/python -m core.demo --parent $$ >/dev/null &
exec .venv/bin/python -m streamlit run app.py "$@"
