"""One account's rows (the account page: GMX's account dashboard, Drift's user lookup) and the
history of ADL'd accounts.

Every read is an index range: trades by (maker | taker, block), liquidations and positions by account,
the trade days and PnL days of the trader rollups by trader; ADL events are few. Its volume and trades
come from the trader-day rollup.
"""

from __future__ import annotations

import re
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import db, schema
from core.period import Filters
from core.read.where import in_period

ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


class AccountError(ValueError):
    """An address the account page cannot look up; the message says what was wrong."""


def normalize_address(text: str) -> str:
    """``text`` as a lower-case 0x address, or AccountError naming what is wrong with it."""
    value = text.strip()
    if not ADDRESS.fullmatch(value):
        shown = value if len(value) <= 50 else value[:47] + "…"
        raise AccountError(f"{shown!r} is not an address: paste 0x followed by 40 hex digits")
    return value.lower()


def _typed(model: type[Any], cols: tuple[str, ...]) -> dict[str, pl.DataType]:
    types = schema.frame_schema(model)
    return {c: types[c] for c in cols}


def trade_days(engine: Engine, chain_id: int, account: str) -> pl.DataFrame:
    """(market, bucket, volume_usd, trades) of every UTC day and market the account traded, newest first."""
    t = schema.table_of(schema.TraderDay)
    cols = ("market", "bucket", "volume_usd", "trades")
    q = sa.select(*(t.c[c] for c in cols)).where(t.c.chain_id == chain_id, t.c.trader == account).order_by(
        t.c.bucket.desc(), t.c.market)
    with engine.connect() as conn:
        return db.read_frame(conn, q, _typed(schema.TraderDay, cols))


TRADE_COLUMNS = ("block_timestamp", "block_number", "log_index", "tx_hash", "market", "maker", "taker", "taker_is_buy",
                 "price", "size", "notional_usd", "maker_fee_usd", "taker_fee_usd", "fill_type")


def trades(engine: Engine, chain_id: int, account: str, limit: int = 500) -> pl.DataFrame:
    """The account's newest ``limit`` trades (maker or taker), newest first, off the maker and taker indexes."""
    t = schema.table_of(schema.Trade)
    cols = [t.c[c] for c in TRADE_COLUMNS]
    sides = [sa.select(*cols).where(t.c.chain_id == chain_id, side == account).order_by(t.c.block_number.desc()).limit(limit)
             for side in (t.c.maker, t.c.taker)]
    with engine.connect() as conn:
        rows = pl.concat([db.read_frame(conn, q, _typed(schema.Trade, TRADE_COLUMNS)) for q in sides])
    return rows.unique(["block_number", "log_index"]).sort(["block_number", "log_index"], descending=True).head(limit)


def pnl_days(engine: Engine, chain_id: int, account: str) -> pl.DataFrame:
    """The account's days from the trader_pnl_daily rollup: bucket, Σ realized PnL, funding paid, fees."""
    t = schema.table_of(schema.TraderPnlDay)
    cols = ("bucket", "realized_pnl_usd", "funding_paid_usd", "fees_usd")
    q = sa.select(*(t.c[c] for c in cols)).where(t.c.chain_id == chain_id, t.c.trader == account).order_by(t.c.bucket)
    with engine.connect() as conn:
        return db.read_frame(conn, q, _typed(schema.TraderPnlDay, cols))


def _newest_first(engine: Engine, model: type[Any], cols: tuple[str, ...], chain_id: int, account: str) -> pl.DataFrame:
    """``model``'s rows of one account (its account index), newest first.

    Sorted here, not by an ORDER BY: given one, SQLite walks the whole table in block order (the key
    or block index) instead of the account's few rows (1.2 s for a market maker's 8 positions at 10M trades)."""
    t = schema.table_of(model)
    order = ["block_number", "log_index"]
    read = tuple(dict.fromkeys((*cols, *order)))
    q = sa.select(*(t.c[c] for c in read)).where(t.c.chain_id == chain_id, t.c.account == account)
    with engine.connect() as conn:
        rows = db.read_frame(conn, q, _typed(model, read))
    return rows.sort(order, descending=True).select(cols)


POSITION_COLUMNS = ("position_key", "market", "is_long", "size", "entry_price", "collateral_usd", "block_timestamp")


def positions(engine: Engine, chain_id: int, account: str) -> pl.DataFrame:
    """The account's positions as of the newest block (size 0 = closed), newest change first."""
    return _newest_first(engine, schema.PositionLatest, POSITION_COLUMNS, chain_id, account)


LIQUIDATION_COLUMNS = ("block_timestamp", "tx_hash", "market", "is_long", "size", "entry_price", "liquidation_price",
                       "collateral_usd", "notional_usd", "remaining_equity_usd", "fee_collected_usd", "socialized_usd")


def liquidations(engine: Engine, chain_id: int, account: str) -> pl.DataFrame:
    """The account's liquidations, newest first."""
    return _newest_first(engine, schema.Liquidation, LIQUIDATION_COLUMNS, chain_id, account)


ADL_COLUMNS = ("block_timestamp", "tx_hash", "market", "account", "is_long", "size_reduced", "price", "realized_pnl_usd",
               "liquidated_position_key")


def adl_reductions(engine: Engine, chain_id: int, f: Filters, account: str | None = None) -> pl.DataFrame:
    """ADLExecuted rows in the period (of one account, if given), newest first."""
    t = schema.table_of(schema.ADLEvent)
    q = sa.select(*(t.c[c] for c in ADL_COLUMNS)).where(t.c.chain_id == chain_id)
    if account is not None:
        q = q.where(t.c.account == account)
    q = in_period(q, t, f)
    with engine.connect() as conn:
        return db.read_frame(conn, q.order_by(t.c.block_number.desc(), t.c.log_index.desc()), _typed(schema.ADLEvent, ADL_COLUMNS))
