"""Fees and revenue by kind, volume by fill type and by taker side, and traders' PnL against the
protocol's (Hyperliquid's "Traders Net PnL", GMX's profit vs loss). Pure: rollup rows in.

Definitions (EVENTS.md): taker fees Σ Trade.takerFee; maker fees Σ Trade.makerFee (rebates
negative); liquidation fees Σ LiquidationFeeCollected.amount; the protocol's net fee revenue is their
sum. Volume by fill type: Σ price × size of Trades by fillType (normal, liquidation, ADL, backstop);
"forced" volume is everything but normal. Traders' PnL: Σ PositionUpdated realizedPnl, fundingPaid
and fee; their net PnL = realized − funding paid − fees; a trader is profitable on a day when that
day's net is above zero and losing when below.
"""

from __future__ import annotations

import polars as pl

FILL_VOLUMES = {"normal": None, "liquidation": "volume_liquidation_usd", "adl": "volume_adl_usd",
                "backstop": "volume_backstop_usd"}


def fill_volumes(stats: pl.DataFrame) -> pl.DataFrame:
    """Per bucket and market: volume by fill type (long: bucket, symbol, fill_type, volume_usd), normal
    being the rest of the bucket's volume."""
    forced = [c for c in FILL_VOLUMES.values() if c]
    wide = stats.with_columns((pl.col("volume_usd") - pl.sum_horizontal(*forced)).clip(lower_bound=0.0).alias("volume_normal_usd"))
    cols = {"normal": "volume_normal_usd", **{k: v for k, v in FILL_VOLUMES.items() if v}}
    return wide.unpivot(index=["bucket", "symbol"], on=list(cols.values()), variable_name="fill_type", value_name="fill_volume_usd").rename(
        {"fill_volume_usd": "volume_usd"}).with_columns(
        pl.col("fill_type").replace_strict({v: k for k, v in cols.items()}, return_dtype=pl.String)).sort("bucket", "symbol", "fill_type")


TAKER_SIDES = ("taker buy", "taker sell")


def taker_sides(stats: pl.DataFrame) -> pl.DataFrame:
    """Per bucket and market, each taker side's volume and trades (bucket, symbol, side, volume_usd, trades):
    taker buys as rolled up, taker sells the rest."""
    buy = stats.select("bucket", "symbol", pl.lit(TAKER_SIDES[0]).alias("side"), pl.col("taker_buy_volume_usd").alias("volume_usd"),
                       pl.col("taker_buy_trades").alias("trades"))
    sell = stats.select("bucket", "symbol", pl.lit(TAKER_SIDES[1]).alias("side"),
                        (pl.col("volume_usd") - pl.col("taker_buy_volume_usd")).alias("volume_usd"),
                        (pl.col("trades") - pl.col("taker_buy_trades")).alias("trades"))
    return pl.concat([buy, sell]).sort("bucket", "symbol", "side")


def fees_daily(stats: pl.DataFrame) -> pl.DataFrame:
    """Per bucket: taker fees, maker fees (rebates negative), liquidation fees, the protocol's net and its running total."""
    out = stats.group_by("bucket").agg(pl.col("taker_fees_usd").sum(), pl.col("maker_fees_usd").sum(),
                                       pl.col("liquidation_fees_usd").sum()).sort("bucket")
    return out.with_columns((pl.col("taker_fees_usd") + pl.col("maker_fees_usd") + pl.col("liquidation_fees_usd")).alias("net_fees_usd")
                            ).with_columns(pl.col("net_fees_usd").cum_sum().alias("cumulative_net_fees_usd"))


def fees_by_market(stats: pl.DataFrame) -> pl.DataFrame:
    """Per market over the period: taker, maker and liquidation fees and the net."""
    return stats.group_by("market", "symbol").agg(pl.col("taker_fees_usd").sum(), pl.col("maker_fees_usd").sum(),
                                                  pl.col("liquidation_fees_usd").sum()).with_columns(
        (pl.col("taker_fees_usd") + pl.col("maker_fees_usd") + pl.col("liquidation_fees_usd")).alias("net_fees_usd")).sort(
        "net_fees_usd", descending=True)


def traders_pnl_daily(stats: pl.DataFrame, counts: pl.DataFrame) -> pl.DataFrame:
    """Per bucket: traders' realized PnL, funding paid, fees and net PnL (from the market rollups) with the
    running net, and (``counts``: bucket, profitable_traders, losing_traders) the day's winners and losers."""
    per = stats.group_by("bucket").agg(pl.col("realized_pnl_usd").sum(), pl.col("funding_paid_usd").sum(),
                                       pl.col("position_fees_usd").sum()).sort("bucket")
    out = per.join(counts.select("bucket", "profitable_traders", "losing_traders"), on="bucket", how="left").with_columns(pl.col("profitable_traders", "losing_traders").fill_null(0))
    return out.with_columns((pl.col("realized_pnl_usd") - pl.col("funding_paid_usd") - pl.col("position_fees_usd")).alias("net_pnl_usd")
                            ).with_columns(pl.col("net_pnl_usd").cum_sum().alias("cumulative_net_pnl_usd"))
