"""load: write one decoded batch, its blocks and the checkpoint in a single transaction."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from core import db, rollup, schema

if TYPE_CHECKING:  # decode's imports (eth_abi, numpy) are not needed to write rows: the writer process skips them
    from core.indexer.decode import Decoded


def read_checkpoint(conn: Connection, chain_id: int, deployment: str) -> tuple[int, str] | None:
    t = schema.table_of(schema.Checkpoint)
    row = conn.execute(sa.select(t.c.last_block, t.c.last_block_hash).where(
        t.c.chain_id == chain_id, t.c.deployment == deployment)).first()
    return (int(row[0]), str(row[1])) if row else None


def write_checkpoint(conn: Connection, chain_id: int, deployment: str, block: int, block_hash: str) -> None:
    t = schema.table_of(schema.Checkpoint)
    values = {"last_block": block, "last_block_hash": block_hash, "updated_at": int(time.time())}
    updated = conn.execute(sa.update(t).where(t.c.chain_id == chain_id, t.c.deployment == deployment).values(**values))
    if not updated.rowcount:
        conn.execute(sa.insert(t).values(chain_id=chain_id, deployment=deployment, **values))


def known_markets(conn: Connection, chain_id: int) -> dict[str, str]:
    t = schema.table_of(schema.Market)
    return {str(m): str(s) for m, s in conn.execute(sa.select(t.c.market, t.c.symbol).where(t.c.chain_id == chain_id))}


Frames = list[tuple[type[SQLModel], pl.DataFrame]]


def batch_frames(chain_id: int, decoded: Decoded, blocks: pl.DataFrame) -> Frames:
    """What one decoded batch writes: its rows, its undecodable logs and its blocks (number, hash, timestamp)."""
    frames: Frames = list(decoded.frames.items())
    frames.append((schema.UndecodableLog, decoded.undecodable))
    frames.append((schema.Block, blocks.select(pl.lit(chain_id, dtype=pl.Int64).alias("chain_id"), "number", "hash", "timestamp")))
    return frames


def commit_frames(engine: Engine, chain_id: int, frames: Frames, checkpoint: db.CheckpointRow | None,
                  refresh_rollups: bool) -> None:
    """``frames``, the checkpoint (if given) and (if asked) the rollups, in one transaction.

    When every block stored before is rolled up, the rollups fold the new rows from ``frames``
    rather than reading them back (:func:`core.rollup.refresh_in`)."""
    fresh = False

    def before(conn: Connection) -> None:
        nonlocal fresh
        fresh = rollup.rolled_up_to_end(conn, chain_id)

    def refresh(conn: Connection) -> None:
        rollup.refresh_in(conn, chain_id, frames if fresh else None)

    db.write_rows(engine, frames, checkpoint, before=before if refresh_rollups else None,
                  after=refresh if refresh_rollups else None)


def commit_batch(engine: Engine, *, chain_id: int, deployment: str, decoded: Decoded, blocks: pl.DataFrame,
                 checkpoint: tuple[int, str] | None, refresh_rollups: bool = False) -> None:
    """Rows, undecodable logs, blocks, (if given) the checkpoint and (if asked) the rollups, atomically.

    ``blocks`` has number, hash, timestamp. The checkpoint only moves forward here; a reorg
    rewind moves it back through :func:`rewind`.
    """
    commit_frames(engine, chain_id, batch_frames(chain_id, decoded, blocks),
                  db.CheckpointRow(chain_id, deployment, *checkpoint) if checkpoint else None, refresh_rollups)


def rewind(engine: Engine, *, chain_id: int, deployment: str, last_good: int, last_good_hash: str) -> dict[str, int]:
    """Delete everything above ``last_good`` and move the checkpoint there, atomically."""
    with db.transaction(engine) as conn:
        rollup.invalidate(conn, chain_id, last_good)
        deleted = db.delete_above(conn, chain_id, last_good)
        write_checkpoint(conn, chain_id, deployment, last_good, last_good_hash)
        rollup.refresh_in(conn, chain_id)  # readers never see rewound rows still counted
    return deleted
