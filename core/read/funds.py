"""Readers of the two buffers' own events: the BackstopVault (Deposit / Withdraw / VaultPnLUpdated:
a few a day plus one per loss-making liquidation, read as rows) and the InsuranceFund (deposits,
withdrawals, one penalty per liquidation, shortfall cover: summed per day and kind by the database).
The fund's end-of-day balance is in the protocol rollup (core/read/stats.balance_rows)."""

from __future__ import annotations

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from core import db, schema
from core.utc import DAY


def _events(engine: Engine, model: type[SQLModel], cols: tuple[str, ...], chain_id: int, end: int | None) -> pl.DataFrame:
    t = schema.table_of(model)
    q = sa.select(*(t.c[c] for c in cols)).where(t.c.chain_id == chain_id)
    if end is not None:
        q = q.where(t.c.block_timestamp < end)
    types = schema.frame_schema(model)
    with engine.connect() as conn:
        return db.read_frame(conn, q.order_by(t.c.block_number, t.c.log_index), {c: types[c] for c in cols})


def vault_events(engine: Engine, chain_id: int, end: int | None = None) -> pl.DataFrame:
    """BackstopVault events before ``end`` in chain order: time, event, owner, position key, signed value
    change, shares (Deposit / Withdraw) and the emitted totalVaultValue (VaultPnLUpdated)."""
    return _events(engine, schema.BackstopVaultEvent, ("block_timestamp", "event", "owner", "position_key",
                                                       "value_change_usd", "shares", "total_vault_value_usd"), chain_id, end)


def insurance_flows(engine: Engine, chain_id: int, end: int | None = None) -> pl.DataFrame:
    """Per UTC day and InsuranceFund event before ``end``: (bucket, event, amount_usd), summed by the database
    (one row per liquidation's penalty would otherwise cross the wire)."""
    t = schema.table_of(schema.InsuranceFundEvent)
    bucket = (t.c.block_timestamp // DAY * DAY).label("bucket")
    q = sa.select(bucket, t.c.event, sa.func.sum(t.c.amount_usd).label("amount_usd")).where(t.c.chain_id == chain_id)
    if end is not None:
        q = q.where(t.c.block_timestamp < end)
    q = q.group_by(bucket, t.c.event).order_by(bucket, t.c.event)
    with engine.connect() as conn:
        return db.read_frame(conn, q, {"bucket": pl.Int64(), "event": pl.String(), "amount_usd": pl.Float64()})

