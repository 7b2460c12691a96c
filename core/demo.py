"""The embedded default: a seeded 90-day demo history, built into the configured database on first run."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import db, schema

DEMO_DEPLOYMENT = "demo"
DEMO_SEED = 1


def is_empty(engine: Engine) -> bool:
    """True when nothing has been indexed into this database yet."""
    t = schema.table_of(schema.Checkpoint)
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one() == 0


def is_demo(engine: Engine) -> bool:
    t = schema.table_of(schema.Checkpoint)
    with engine.connect() as conn:
        names = {str(n) for (n,) in conn.execute(sa.select(t.c.deployment))}
    return names == {DEMO_DEPLOYMENT}


def ensure_demo(engine: Engine, days: int, progress: Callable[[float, str], None] | None = None) -> bool:
    """Build the demo history if the database is empty; True if this call built it.

    One build per database: concurrent callers (other sessions, other app processes or replicas)
    wait for the first and then find the data there.
    """
    with db.exclusive(engine, "demo-build"):
        if not is_empty(engine):
            return False
        from core.simulator import build_database

        build_database(engine, seed=DEMO_SEED, days=days, progress=progress)
        return True
