"""Fees, PnL & funding: the protocol's fee revenue by kind, how much volume was forced, traders' PnL
against the protocol's, and the perp markets' funding."""

from __future__ import annotations

import polars as pl
import streamlit as st

from core import charts, fmt
from views import _cards as cards
from views import _common as common

view = common.page("Fees, PnL & funding")
f, gran = view.filters, view.granularity
cards.period(f.start, f.end)
data = common.revenue_and_pnl(view.chain_id, f, gran)
fees, by_market, fills, sides, pnl = (data[k] for k in ("fees", "fees_by_market", "fill_volume", "taker_sides", "traders_pnl"))
forced = float(fills.filter(pl.col("fill_type") != "normal")["volume_usd"].sum())
total = float(fills["volume_usd"].sum())
cards.card_row([
    cards.Shown("Net fee revenue", fmt.format_usd(float(fees["net_fees_usd"].sum())), "Taker fees + maker fees (rebates negative) + liquidation fees."),
    cards.Shown("Taker fees", fmt.format_usd(float(fees["taker_fees_usd"].sum())), "Σ Trade.takerFee."),
    cards.Shown("Maker fees", fmt.format_usd(float(fees["maker_fees_usd"].sum())), "Σ Trade.makerFee: negative when rebates outweigh fees."),
    cards.Shown("Liquidation fees", fmt.format_usd(float(fees["liquidation_fees_usd"].sum())), "Σ LiquidationFeeCollected.amount."),
    cards.Shown("Forced volume", fmt.format_pct(forced / total if total else None), f"{fmt.format_usd(forced)} of liquidation, "
                "ADL and backstop fills, as a share of all volume."),
    cards.Shown("Traders' net PnL", fmt.format_usd(float(pnl["net_pnl_usd"].sum())),
                "Σ realized PnL − funding paid − fees of every PositionUpdated in the period."),
], "revenue")

axis = charts.time_axis([fees, fills, pnl], gran)
left, right = st.columns(2)
with left:
    kinds = fees.unpivot(index="bucket", on=["taker_fees_usd", "maker_fees_usd", "liquidation_fees_usd"], variable_name="kind",
                         value_name="usd").with_columns(pl.col("kind").replace(
                             {"taker_fees_usd": "taker", "maker_fees_usd": "maker (rebates −)", "liquidation_fees_usd": "liquidation"}))
    common.chart(charts.bars(kinds, "usd", "Fees by kind", color="kind", fmt="usd", axis=axis, color_title="Kind"), fees, "fees_by_kind")
    split = st.segmented_control("Volume by", ["fill type", "market", "taker side"], default="fill type", key="revenue_split") or "fill type"
    if split == "fill type":
        shown = fills.group_by("bucket", "fill_type").agg(pl.col("volume_usd").sum())
        common.chart(charts.bars(shown, "volume_usd", "Volume by fill type", color="fill_type", fmt="usd", axis=axis,
                                 color_title="Fill type"), fills, "volume_by_fill_type")
    elif split == "market":
        forced_only = fills.filter(pl.col("fill_type") != "normal").group_by("bucket", "symbol").agg(pl.col("volume_usd").sum())
        common.chart(charts.bars(forced_only, "volume_usd", "Forced volume (liquidation, ADL, backstop) by market", fmt="usd",
                                 axis=axis), forced_only, "forced_volume_by_market")
    else:
        per_side = sides.group_by("bucket", "side").agg(pl.col("volume_usd").sum())
        common.chart(charts.bars(per_side, "volume_usd", "Volume by taker side", color="side", fmt="usd", axis=axis,
                                 color_title="Taker"), sides, "volume_by_taker_side")
with right:
    cum = fees.with_columns(pl.lit("protocol net fees").alias("series"))
    common.chart(charts.lines(cum, "cumulative_net_fees_usd", "Cumulative net fee revenue", "series", axis=axis,
                              color_title="Revenue"), fees.select("bucket", "net_fees_usd", "cumulative_net_fees_usd"), "cumulative_fees")
    traders = pnl.with_columns(pl.lit("traders' net PnL").alias("series"))
    common.chart(charts.lines(traders, "cumulative_net_pnl_usd", "Traders' cumulative net PnL", "series", axis=axis,
                              color_title="Traders"), pnl, "traders_pnl")
counts = pnl.unpivot(index="bucket", on=["profitable_traders", "losing_traders"], variable_name="kind", value_name="traders").with_columns(
    pl.col("kind").replace({"profitable_traders": "profitable", "losing_traders": "losing"}))
common.chart(charts.bars(counts, "traders", "Profitable vs losing traders per day (all markets)", color="kind", axis=axis,
                         color_title="Traders"), counts, "profitable_vs_losing")
st.subheader("Fees by market", anchor=False)
st.dataframe(by_market.drop("market"), hide_index=True, width="stretch", column_config={
    "symbol": st.column_config.TextColumn("Market"),
    "taker_fees_usd": st.column_config.NumberColumn("Taker fees (USD)", format="dollar"),
    "maker_fees_usd": st.column_config.NumberColumn("Maker fees (USD)", format="dollar", help="negative: rebates"),
    "liquidation_fees_usd": st.column_config.NumberColumn("Liquidation fees (USD)", format="dollar"),
    "net_fees_usd": st.column_config.NumberColumn("Net (USD)", format="dollar")})
common.csv_download(by_market, "fees_by_market")

st.subheader("Funding", anchor=False)
fund = common.funding(view.chain_id, f)
summary = fund["summary"]
st.dataframe(summary.drop("market"), hide_index=True, width="stretch", column_order=[
    "symbol", "funding_rate_annual", "funding_rate_per_hour", "mean_funding_rate_annual", "cumulative_funding"], column_config={
    "symbol": st.column_config.TextColumn("Market"),
    "funding_rate_annual": st.column_config.NumberColumn("Latest rate, annualised", format="percent"),
    "funding_rate_per_hour": st.column_config.NumberColumn("Latest rate per hour", format="%.6f"),
    "mean_funding_rate_annual": st.column_config.NumberColumn("Mean rate, annualised", format="percent"),
    "cumulative_funding": st.column_config.NumberColumn("Cumulative funding (index change)", format="%.6f",
                                                        help="what a one-unit long paid over the period (negative: received)")})
common.csv_download(summary, "funding_summary")
left, right = st.columns(2)
with left:
    series = fund["series"]
    common.chart(charts.lines(series, "cumulative_funding", "Cumulative funding per market (index change)", "symbol", fmt=",.4f",
                              axis=axis, color_title="Market"), series, "cumulative_funding")
with right:
    premium = fund["premium"].drop_nulls("premium")
    common.chart(charts.lines(premium, "premium", "Mark − index premium (hourly mean)", "symbol", fmt=".3%", axis=axis,
                              color_title="Market"), premium, "premium")
