"""Funding of the perp markets: the rate annualised, the funding accrued per unit of position over
the period, and the mark − index premium that drives it. Pure: the read layer's rows in.

EVENTS.md: ``fundingRate`` is per hour (1e18 on chain); the annualised rate is rate × 24 × 365
(simple, as the venues show it). The cumulative funding index is the running Σ of the hourly rates
the contract applied, so its change over the period is the funding a 1-unit-notional long paid
(a negative change: it received). The premium is (mark − index) ÷ index, the hour's mean.
"""

from __future__ import annotations

import polars as pl

HOURS_PER_YEAR = 24 * 365


def funding_series(updates: pl.DataFrame) -> pl.DataFrame:
    """Per market and update: the hourly rate, the annualised rate and the index's change since the
    period's first update (cumulative funding over the period)."""
    return updates.sort("market", "block_timestamp").with_columns(
        (pl.col("funding_rate") * HOURS_PER_YEAR).alias("funding_rate_annual"),
        (pl.col("cumulative_funding_index") - pl.col("cumulative_funding_index").first().over("market")).alias("cumulative_funding"),
    ).rename({"block_timestamp": "bucket"})


def funding_summary(updates: pl.DataFrame) -> pl.DataFrame:
    """Per market over the period: the latest rate (hourly and annualised), the mean rate annualised and
    the cumulative funding (index change)."""
    series = funding_series(updates)
    return series.group_by("market").agg(
        pl.col("funding_rate").last().alias("funding_rate_per_hour"), pl.col("funding_rate_annual").last(),
        (pl.col("funding_rate").mean() * HOURS_PER_YEAR).alias("mean_funding_rate_annual"),
        pl.col("cumulative_funding").last()).sort("market")


def premium_series(hourly: pl.DataFrame) -> pl.DataFrame:
    """Per market and hour: the mean premium in USD and as a fraction of the index."""
    return hourly.with_columns(
        pl.when(pl.col("index_price") > 0).then(pl.col("premium_usd") / pl.col("index_price")).otherwise(None).alias("premium"))
