"""Settings from the environment (Streamlit exposes top-level `secrets.toml` keys as env vars)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "data"
DEFAULT_DATABASE_PATH = DATA_DIR / "marginx.db"
DEFAULT_MANIFEST = DATA_DIR / "deployments" / "demo.json"


def database_url() -> str:
    """DATABASE_URL, or the SQLite file under data/ that the app and indexer share by default."""
    return os.environ.get("DATABASE_URL") or f"sqlite:///{DEFAULT_DATABASE_PATH}"


def rpc_url() -> str | None:
    """RPC_URL if set (the node to index and to measure lag against)."""
    return os.environ.get("RPC_URL") or None


def manifest_path() -> Path:
    """MANIFEST, or the demo deployment's manifest."""
    value = os.environ.get("MANIFEST")
    return Path(value) if value else DEFAULT_MANIFEST
