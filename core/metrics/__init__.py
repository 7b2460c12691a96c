"""The protocol's health series, as polars frames, with exactly EVENTS.md's definitions.

Pure: frames in (the read layer's, core/read), frames out; no database, no streamlit. Pages and the
``/stats`` API get them composed with their reads through :mod:`core.dashboard`.

Definitions (EVENTS.md "Definitions of the headline figures"):
- volume: Σ price × size of every Trade (all fill types); trades: count of Trade events;
- liquidations: count of PositionLiquidated; liquidated notional: Σ size × liquidationPrice;
- bad debt: Σ DebtSocialized.amount (per market: the amount socialized by its liquidations);
- insurance fund: the balance of the latest InsuranceFund event (as of the period's end);
- backstop vault: the value implied by Deposit / Withdraw / VaultPnLUpdated (as of the period's end);
- open interest: Σ over perp markets of latest long OI × latest mark price (as of the period's end);
- active traders: distinct makers and takers of Trade events in the period. A day is a UTC day.
"""

from __future__ import annotations

import polars as pl

from core.metrics import totals
from core.period import Filters
from core.utc import HOUR, datetime_expr

#: Market-stats columns that add up over buckets (to_weeks sums them).
ADDITIVE = ("volume_usd", "base_volume", "trades", "taker_buy_volume_usd", "taker_buy_trades", "fees_usd", "taker_fees_usd", "maker_fees_usd",
            "volume_liquidation_usd", "volume_adl_usd", "volume_backstop_usd", "liquidation_fees_usd", "liquidations", "liquidations_long",
            "liquidated_notional_usd", "liquidated_notional_long_usd", "adl_covered_usd", "backstop_loss_usd",
            "insurance_cover_usd", "socialized_usd", "realized_pnl_usd", "funding_paid_usd", "position_fees_usd")
#: Market-stats columns that are a state at the bucket's end (to_weeks keeps the last one).
STATES = ("long_open_interest", "short_open_interest", "mark_price", "funding_rate")


def week_start(bucket: pl.Expr) -> pl.Expr:
    """Monday 00:00 UTC of the bucket's week (1970-01-01 was a Thursday)."""
    return totals.week_of(bucket).alias("bucket")


def to_weeks(daily: pl.DataFrame) -> pl.DataFrame:
    """Daily market stats summed into ISO weeks (last values stay last; traders = max daily, a lower bound)."""
    return daily.sort("bucket").with_columns(week_start(pl.col("bucket"))).group_by("chain_id", "market", "bucket").agg(
        *(pl.col(c).sum() for c in ADDITIVE),
        pl.col("open_price").drop_nulls().first(), pl.col("high_price").max(), pl.col("low_price").min(),
        pl.col("close_price").drop_nulls().last(),
        *(pl.col(c).drop_nulls().last() for c in STATES),
        pl.col("traders").max(),
    ).select(daily.columns).sort("bucket", "market")


def protocol_to_weeks(daily: pl.DataFrame) -> pl.DataFrame:
    """Daily protocol stats into ISO weeks: flows summed, the insurance balance the week's last."""
    return daily.with_columns(week_start(pl.col("bucket"))).group_by("chain_id", "bucket").agg(
        pl.col("socialized_debt_usd").sum(), pl.col("insurance_fund_usd").drop_nulls().last(),
        pl.col("backstop_vault_change_usd").sum(), pl.col("backstop_shares_change").sum(), pl.col("blocks").sum()).sort("bucket")


def latest_state(rows: pl.DataFrame) -> pl.DataFrame:
    """Per market, the latest long/short OI and mark price of ``rows`` (in bucket order)."""
    return rows.group_by("market").agg(
        pl.col("long_open_interest").drop_nulls().last(), pl.col("short_open_interest").drop_nulls().last(),
        pl.col("mark_price").drop_nulls().last())


def daily_totals(stats_daily: pl.DataFrame, protocol_daily: pl.DataFrame, *, by_market_debt: bool) -> pl.DataFrame:
    """One row per UTC day with any indexed activity: volume, trades, liquidations, notional, debt
    (:func:`core.metrics.totals.bucket_totals` on the frames' rows), with its ``date``."""
    rows = totals.bucket_totals(stats_daily.sort("bucket").select(totals.BUCKET_COLUMNS).rows(), protocol_daily.select(totals.PROTOCOL_COLUMNS).rows(),
                                by_market_debt=by_market_debt)
    out = pl.DataFrame(rows, schema={"bucket": pl.Int64(), "volume_usd": pl.Float64(), "trades": pl.Int64(), "liquidations": pl.Int64(),
                                     "liquidated_notional_usd": pl.Float64(), "socialized_debt_usd": pl.Float64()}, orient="row")
    return out.with_columns(datetime_expr("bucket").dt.date().alias("date"))


def hour_aligned(f: Filters) -> Filters:
    """The smallest whole-hour period holding ``f`` (hourly rollups answer it)."""
    return Filters(start=None if f.start is None else f.start // HOUR * HOUR,
                   end=None if f.end is None else -(-f.end // HOUR) * HOUR, markets=f.markets)


def in_period(df: pl.DataFrame, f: Filters) -> pl.DataFrame:
    """Rows of ``df`` whose bucket lies in [f.start, f.end)."""
    if f.start is not None:
        df = df.filter(pl.col("bucket") >= f.start)
    if f.end is not None:
        df = df.filter(pl.col("bucket") < f.end)
    return df


# ---------------------------------------------------------------------------------------------
# Series for the pages

def with_symbols(stats: pl.DataFrame, markets: pl.DataFrame) -> pl.DataFrame:
    """Attach each market's symbol and type (symbols are untrusted text, kept verbatim)."""
    return stats.join(markets, on="market", how="left").with_columns(pl.col("symbol").fill_null(pl.col("market")))


def volume_series(stats: pl.DataFrame) -> pl.DataFrame:
    """Per bucket and market: volume and trades, and the taker-buy part of each (for the taker-side split)."""
    return stats.select("bucket", "symbol", "volume_usd", "trades", "taker_buy_volume_usd", "taker_buy_trades").sort("bucket", "symbol")


def liquidation_series(stats: pl.DataFrame) -> pl.DataFrame:
    """Per bucket, market and side: liquidation count and notional."""
    long = stats.select("bucket", "symbol", pl.lit("long").alias("side"), pl.col("liquidations_long").alias("count"),
                        pl.col("liquidated_notional_long_usd").alias("notional_usd"))
    short = stats.select("bucket", "symbol", pl.lit("short").alias("side"),
                         (pl.col("liquidations") - pl.col("liquidations_long")).alias("count"),
                         (pl.col("liquidated_notional_usd") - pl.col("liquidated_notional_long_usd")).alias("notional_usd"))
    return pl.concat([long, short]).filter(pl.col("count") > 0).with_columns(
        pl.concat_str("symbol", pl.lit(" · "), "side").alias("series")).sort("bucket", "series")


def cumulative_bad_debt(protocol_all: pl.DataFrame, f: Filters) -> pl.DataFrame:
    """Running Σ DebtSocialized since the first block, shown over the period."""
    out = protocol_all.sort("bucket").select("bucket", pl.col("socialized_debt_usd").cum_sum().alias("cumulative_usd"))
    return in_period(out, f)


def balance_series(protocol_all: pl.DataFrame, f: Filters) -> pl.DataFrame:
    """Insurance fund (latest balance, carried forward) and backstop vault (running value) per bucket."""
    df = protocol_all.sort("bucket").select(
        "bucket", pl.col("insurance_fund_usd").forward_fill().fill_null(0.0).alias("Insurance fund"),
        pl.col("backstop_vault_change_usd").cum_sum().alias("Backstop vault"))
    return in_period(df, f).unpivot(index="bucket", variable_name="series", value_name="usd")


def open_interest_series(stats_all: pl.DataFrame, f: Filters) -> pl.DataFrame:
    """Per perp market and bucket: latest long OI × latest mark, carried forward between updates."""
    perps = stats_all.filter(pl.col("market_type") == "perp").sort("bucket")
    df = perps.with_columns(
        pl.col("long_open_interest").forward_fill().over("market"), pl.col("mark_price").forward_fill().over("market"),
    ).select("bucket", "symbol", (pl.col("long_open_interest") * pl.col("mark_price")).fill_null(0.0).alias("oi_usd"))
    return in_period(df, f)


WATERFALL_TIERS = {"adl": "adl_covered_usd", "backstop": "backstop_loss_usd", "insurance": "insurance_cover_usd",
                   "socialized": "socialized_usd"}


def waterfall_series(stats: pl.DataFrame) -> pl.DataFrame:
    """Cumulative loss absorbed per tier (ADL → backstop → insurance → socialized) over the period."""
    tiers = WATERFALL_TIERS
    per = stats.group_by("bucket").agg(*(pl.col(c).sum().alias(t) for t, c in tiers.items())).sort("bucket")
    cum = per.with_columns(*(pl.col(t).cum_sum() for t in tiers))
    return cum.unpivot(index="bucket", variable_name="tier", value_name="cumulative_usd").with_columns(
        pl.col("tier").replace_strict({t: i for i, t in enumerate(tiers)}, return_dtype=pl.Int64).alias("tier_order"))


def coverage_series(open_interest: pl.DataFrame, balances: pl.DataFrame) -> pl.DataFrame:
    """(insurance fund + backstop vault) / open interest per bucket, from open_interest_series and balance_series."""
    oi = open_interest.group_by("bucket").agg(pl.col("oi_usd").sum())
    buffers = balances.group_by("bucket").agg(pl.col("usd").sum().alias("buffers_usd"))
    return buffers.join(oi, on="bucket", how="inner").filter(pl.col("oi_usd") > 0).with_columns(
        (pl.col("buffers_usd") / pl.col("oi_usd")).alias("coverage"), pl.lit("coverage").alias("series")).sort("bucket")


def market_table(stats: pl.DataFrame, latest: pl.DataFrame, history: pl.DataFrame) -> pl.DataFrame:
    """Per market over the period: volume, share, trades, OI, funding, liquidations, last price.

    ``stats``: the period's daily rows with symbols; ``latest``: :func:`latest_state` at the period's
    end; ``history``: every daily row up to the period's end (for the last price and funding rate)."""
    last = history.sort("bucket").group_by("market").agg(
        pl.col("close_price").drop_nulls().last().alias("last_price"),
        pl.col("funding_rate").drop_nulls().last().alias("funding_rate_per_hour"))
    per = stats.group_by("market", "symbol", "market_type").agg(
        pl.col("volume_usd").sum(), pl.col("trades").sum(), pl.col("liquidations").sum(),
        pl.col("liquidated_notional_usd").sum(), pl.col("fees_usd").sum())
    total = float(per["volume_usd"].sum()) or 1.0
    return per.join(latest, on="market", how="left").join(last, on="market", how="left").with_columns(
        (pl.col("volume_usd") / total).alias("share"),
        pl.when(pl.col("market_type") == "perp").then(pl.col("long_open_interest") * pl.col("mark_price"))
        .otherwise(None).alias("open_interest_usd"),
    ).select("symbol", "market_type", "volume_usd", "share", "trades", "open_interest_usd", "funding_rate_per_hour",
             "liquidations", "liquidated_notional_usd", "fees_usd", "last_price", "market").sort("volume_usd", descending=True)


def liquidation_table(rows: pl.DataFrame) -> pl.DataFrame:
    """The read layer's liquidation rows for a table: UTC time first, side as text, the deficit."""
    return rows.with_columns(
        datetime_expr("block_timestamp").alias("time"),
        pl.when(pl.col("is_long")).then(pl.lit("long")).otherwise(pl.lit("short")).alias("side"),
        (-pl.col("remaining_equity_usd")).clip(lower_bound=0).alias("deficit_usd"),
    ).drop("block_timestamp", "is_long").select("time", pl.exclude("time"))


def trader_days(active: pl.DataFrame, new: pl.DataFrame) -> pl.DataFrame:
    """Per day: active traders, new ones (first day in the selected markets) and returning ones."""
    return active.join(new, on="bucket", how="left").with_columns(pl.col("new").fill_null(0)).with_columns(
        (pl.col("active") - pl.col("new")).alias("returning")).sort("bucket")


def top_traders(top: pl.DataFrame, active_days: pl.DataFrame) -> pl.DataFrame:
    """The ranked top list with each trader's active days in the period (rank order kept)."""
    return top.with_row_index("rank").join(active_days, on="trader", how="left").sort("rank").drop("rank")
