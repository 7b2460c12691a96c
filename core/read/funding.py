"""Readers of the perp markets' funding (FundingUpdated: hourly per market) and the oracle's mark vs
index (PriceUpdated). Both grow with time and markets, not with trades: the updates are hourly, the
pushes are read through their hourly rollup (premium_hourly)."""

from __future__ import annotations

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import db, schema
from core.period import Filters
from core.read.where import in_period


def funding_updates(engine: Engine, chain_id: int, f: Filters) -> pl.DataFrame:
    """FundingUpdated rows in the period: market, time, rate per hour and the cumulative funding index."""
    t = schema.table_of(schema.Funding)
    q = in_period(sa.select(t.c.market, t.c.block_timestamp, t.c.funding_rate, t.c.cumulative_funding_index).where(
        t.c.chain_id == chain_id), t, f)
    types = schema.frame_schema(schema.Funding)
    with engine.connect() as conn:
        rows = db.read_frame(conn, q, {c: types[c] for c in ("market", "block_timestamp", "funding_rate", "cumulative_funding_index")})
    return rows.sort("market", "block_timestamp")


def premium_hourly(engine: Engine, chain_id: int, f: Filters) -> pl.DataFrame:
    """Per market and hour of the period (hours starting in it): the oracle pushes' mean mark − index
    (USD) and mean index, from the premium_hourly rollup (Σ over the hour's pushes ÷ their count)."""
    t = schema.table_of(schema.PremiumHourly)
    q = in_period(sa.select(t.c.market, t.c.bucket, (t.c.premium_sum_usd / t.c.pushes).label("premium_usd"),
                            (t.c.index_sum_usd / t.c.pushes).label("index_price"), t.c.pushes)
                  .where(t.c.chain_id == chain_id, t.c.pushes > 0), t, f, time="bucket").order_by(t.c.market, t.c.bucket)
    with engine.connect() as conn:
        return db.read_frame(conn, q, {"market": pl.String(), "bucket": pl.Int64(), "premium_usd": pl.Float64(),
                                       "index_price": pl.Float64(), "pushes": pl.Int64()})
