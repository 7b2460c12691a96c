"""What a live dashboard polls: the newest commit, in one row, and how long ago it was.

Every indexer commit (and every batch of the demo build) moves a checkpoint: its block, its hash and
its wall-clock time. An open page compares that row with the one it was drawn from, every few
seconds, and redraws only when it changed, so following the database costs one indexed one-row
query per poll while nothing happens.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import schema


@dataclass(frozen=True)
class Commit:
    """The newest checkpoint: what the database was last committed through, and when."""

    last_block: int
    last_block_hash: str  # a reorg can end at the same block number with other rows
    committed_at: int  # UTC seconds of the commit (wall clock, not block time)
    rolled_up_through: int  # the block the rollups are built through (−1: none yet); behind
    # last_block only in a writer that commits rows and rollups apart (the demo build)


def newest_commit(engine: Engine) -> Commit | None:
    """The most recently committed checkpoint of any deployment (None before the first commit)."""
    t = schema.table_of(schema.Checkpoint)
    r = schema.table_of(schema.RollupState)
    rolled = sa.select(sa.func.coalesce(sa.func.max(r.c.through_block), -1)).scalar_subquery()
    with engine.connect() as conn:
        row = conn.execute(sa.select(t.c.last_block, t.c.last_block_hash, t.c.updated_at, rolled)
                           .order_by(t.c.updated_at.desc(), t.c.last_block.desc()).limit(1)).first()
    return None if row is None else Commit(int(row[0]), str(row[1]), int(row[2]), int(row[3]))


def age_text(seconds: float) -> str:
    """A commit's age as a person says it: "just now", "12 s ago", "4 min ago", "3 h ago", "2 days ago"."""
    s = max(0, int(seconds))
    if s < 2:
        return "just now"
    if s < 120:
        return f"{s} s ago"
    if s < 7_200:
        return f"{s // 60} min ago"
    if s < 172_800:
        return f"{s // 3_600} h ago"
    return f"{s // 86_400:,} days ago"
