"""One account's figures (the account page) and the ADL history. Pure: the read layer's rows in.

An account's realized PnL, funding and fees are the Σ of its PositionUpdated ``realizedPnl``,
``fundingPaid`` and ``fee`` (EVENTS.md); its net PnL is realized PnL − funding paid − fees. Its
volume is the Σ notional of the Trades it was maker or taker of.
"""

from __future__ import annotations

import polars as pl

from core.utc import datetime_expr

FILL_TYPES = {0: "normal", 1: "liquidation", 2: "adl", 3: "backstop"}


def pnl_daily(days: pl.DataFrame) -> pl.DataFrame:
    """Per UTC day (the rollup's bucket, realized_pnl_usd, funding_paid_usd, fees_usd rows): net PnL and its running total."""
    return days.sort("bucket").with_columns(
        (pl.col("realized_pnl_usd") - pl.col("funding_paid_usd") - pl.col("fees_usd")).alias("net_pnl_usd"),
    ).with_columns(pl.col("net_pnl_usd").cum_sum().alias("cumulative_net_pnl_usd"))


def summary(days: pl.DataFrame, trade_days: pl.DataFrame, liquidations: pl.DataFrame, adl: pl.DataFrame) -> dict[str, float | int]:
    """The account's totals: volume and trades (from its trade days), realized PnL, funding, fees, net
    PnL (from its PnL days), liquidations with their notional, and ADL reductions with the PnL they realized."""
    realized = float(days["realized_pnl_usd"].sum())
    funding = float(days["funding_paid_usd"].sum())
    fees = float(days["fees_usd"].sum())
    return {
        "volume_usd": float(trade_days["volume_usd"].sum()), "trades": int(trade_days["trades"].sum()),
        "realized_pnl_usd": realized, "funding_paid_usd": funding, "fees_usd": fees, "net_pnl_usd": realized - funding - fees,
        "liquidations": liquidations.height, "liquidated_notional_usd": float(liquidations["notional_usd"].sum()),
        "adl_reductions": adl.height, "adl_realized_pnl_usd": float(adl["realized_pnl_usd"].sum()),
    }


def trade_table(trades: pl.DataFrame, account: str) -> pl.DataFrame:
    """The account's trades for a table: UTC time, its role and side, fill type in words."""
    role = pl.when(pl.col("taker") == account).then(pl.lit("taker")).otherwise(pl.lit("maker"))
    buys = (pl.col("taker") == account) == pl.col("taker_is_buy")
    return trades.with_columns(
        datetime_expr("block_timestamp").alias("time"), role.alias("role"),
        pl.when(buys).then(pl.lit("buy")).otherwise(pl.lit("sell")).alias("side"),
        pl.col("fill_type").replace_strict(FILL_TYPES, default="other", return_dtype=pl.String).alias("fill"),
        pl.when(pl.col("taker") == account).then(pl.col("taker_fee_usd")).otherwise(pl.col("maker_fee_usd")).alias("fee_usd"),
    ).select("time", "market", "role", "side", "price", "size", "notional_usd", "fee_usd", "fill", "tx_hash")


def adl_history(adl: pl.DataFrame) -> pl.DataFrame:
    """Per ADL'd account: reductions, size and notional force-reduced, realized PnL, last time; most reduced first."""
    return adl.group_by("account").agg(
        pl.len().alias("reductions"), pl.col("size_reduced").sum(),
        (pl.col("size_reduced") * pl.col("price")).sum().alias("reduced_notional_usd"),
        pl.col("realized_pnl_usd").sum(), pl.col("block_timestamp").max().alias("last_ts"),
    ).with_columns(datetime_expr("last_ts").alias("last_time")).drop("last_ts").sort(
        ["reduced_notional_usd", "account"], descending=[True, False])
