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


def build_demo() -> bool:
    """BUILD_DEMO (default on): build the demo history into an empty database on first run."""
    return os.environ.get("BUILD_DEMO", "1").strip().lower() not in ("0", "false", "no", "off")


def demo_days() -> int:
    """DEMO_DAYS (default 90): length of the demo history in simulated days, the setting for smaller
    hosts: the database and the build's CPU grow with it (~17 MB and ~2 s a day; README)."""
    value = os.environ.get("DEMO_DAYS", "90")
    try:
        days = int(value)
    except ValueError:
        raise ValueError(f"DEMO_DAYS must be a whole number of days, got {value!r}") from None
    if days < 1:
        raise ValueError(f"DEMO_DAYS must be at least 1, got {days}")
    return days
