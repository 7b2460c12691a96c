"""Position risk: the open book's largest and most-levered positions, leverage, OI by side, the
liquidation map (Drift's liquidation curves) and ADL exposure (what none of the peers show)."""

from __future__ import annotations

import polars as pl
import streamlit as st

from core import charts, fmt
from core.metrics.risk import MAINTENANCE_MARGIN
from views import _cards as cards
from views import _common as common

view = common.page("Position risk")
st.caption("The open book as of the newest indexed block (the period does not apply). All times are UTC.")
book = common.position_risk(view.chain_id, view.filters.markets)
largest, levered, oi = book["largest"], book["most_levered"], book["open_interest"]
lev = book["leverage"]
near = book["liquidation_map"].filter(pl.col("move").is_in([-0.1, 0.1])).group_by("move").agg(pl.col("liquidated_notional_usd").sum())
near_usd = {round(float(m), 2): float(v) for m, v in near.iter_rows()}
cards.card_row([
    cards.Shown("Open positions", fmt.format_count(float(lev["positions"].sum())), "Positions whose latest PositionUpdated has a size."),
    cards.Shown("Open notional", fmt.format_usd(float(lev["notional_usd"].sum())), "Σ size × latest mark of the open positions."),
    cards.Shown("Long OI", fmt.format_usd(float(oi.filter(pl.col("side") == "long")["notional_usd"].sum())), "Σ long notional at the mark."),
    cards.Shown("Short OI", fmt.format_usd(float(oi.filter(pl.col("side") == "short")["notional_usd"].sum())), "Σ short notional at the mark."),
    cards.Shown("Liquidated by −10%", fmt.format_usd(near_usd.get(-0.1, 0.0)),
                "Notional (size × liquidation price) of the longs a 10% fall of every selected market's mark would liquidate."),
    cards.Shown("Liquidated by +10%", fmt.format_usd(near_usd.get(0.1, 0.0)), "The same for shorts on a 10% rise."),
], "risk")

POSITION_COLUMNS = ["symbol", "side", "account_short", "notional_usd", "leverage", "equity_usd", "unrealized_pnl_usd",
                    "entry_price", "mark", "liquidation_price", "move_to_liquidation", "account"]


def position_table(df: pl.DataFrame, key: str) -> None:
    shown = cards.with_short_addresses(df.with_columns(
        pl.when(pl.col("is_long")).then(pl.lit("long")).otherwise(pl.lit("short")).alias("side")), "account", link=True)
    st.dataframe(shown, hide_index=True, width="stretch", column_order=POSITION_COLUMNS, key=f"risk-{key}", column_config={
        **cards.address_columns("account", "Account", link=True),
        "symbol": st.column_config.TextColumn("Market"), "side": st.column_config.TextColumn("Side"),
        "notional_usd": st.column_config.NumberColumn("Notional (USD)", format="dollar"),
        "leverage": st.column_config.NumberColumn("Leverage (×)", format="%.1f", help="notional ÷ equity; blank: equity ≤ 0"),
        "equity_usd": st.column_config.NumberColumn("Equity (USD)", format="dollar"),
        "unrealized_pnl_usd": st.column_config.NumberColumn("Unrealized PnL (USD)", format="dollar"),
        "entry_price": st.column_config.NumberColumn("Entry (USD)", format="%.4f"),
        "mark": st.column_config.NumberColumn("Mark (USD)", format="%.4f"),
        "liquidation_price": st.column_config.NumberColumn("Liquidation price (USD)", format="%.4f"),
        "move_to_liquidation": st.column_config.NumberColumn("Move to liquidation", format="percent"),
    })
    common.csv_download(df, f"positions_{key}")


left, right = st.columns(2)
with left:
    st.subheader("Largest open positions", anchor=False)
    position_table(largest, "largest")
with right:
    st.subheader("Most levered open positions", anchor=False)
    position_table(levered, "levered")

left, right = st.columns(2)
with left:
    common.chart(charts.grouped_bars(lev.with_columns(pl.lit("positions").alias("count")), "bucket", "positions", "count",
                                     "Open positions by leverage", fmt=",.0f", order=lev["bucket"].to_list()), lev, "leverage")
with right:
    common.chart(charts.grouped_bars(oi, "symbol", "notional_usd", "side", "Open interest by side (USD)", fmt="$,.0f"),
                 oi, "open_interest_by_side")

st.subheader("Liquidation map", anchor=False)
st.caption(f"Notional whose liquidation price a move of the mark would cross, cumulative from 0 (longs on falls, shorts on "
           f"rises), with every other price and position held. Maintenance margin {MAINTENANCE_MARGIN:.0%} (seed 001 §1.1).")
lmap = book["liquidation_map"].with_columns((pl.col("move") * 100).round(0).cast(pl.Int64).alias("move_pct"))
common.chart(charts.grouped_bars(lmap, "move_pct", "liquidated_notional_usd", "symbol", "Liquidated notional by price move (%)",
                                 fmt="$,.0f"), lmap.drop("move_pct"), "liquidation_map")

st.subheader("ADL exposure", anchor=False)
st.caption("Profitable positions in auto-deleveraging order: PnL ÷ collateral × effective leverage, highest first (the "
           "Binance/Bybit rule; marginX's _triggerADL order is not public). Under a shock, the positions it liquidates are "
           "closed: the book takes up to the depth given, and ADL reduces the other side in this order for the rest.")
symbols = dict(zip(oi["market"], oi["symbol"], strict=False))
if symbols:
    c1, c2, c3 = st.columns(3)
    market = c1.selectbox("Market", list(symbols), format_func=symbols.get, key="risk_adl_market")
    shock = c2.slider("Shock to its mark (%)", -50, 50, -20, step=1, key="risk_adl_shock") / 100
    depth = c3.number_input("Book depth for the liquidations (USD)", min_value=0.0, value=0.0, step=100_000.0, key="risk_adl_depth")
    exposure = common.adl_exposure(view.chain_id, market, shock, float(depth))
    reduced = float(exposure["reduced_notional_usd"].sum()) if exposure.height else 0.0
    st.caption(f"{exposure.filter(pl.col('reduced_size') > 0).height:,} positions would be reduced, "
               f"{fmt.format_usd(reduced)} of notional at the shocked mark.")
    st.dataframe(cards.with_short_addresses(exposure, "account", link=True), hide_index=True, width="stretch",
                 column_order=["rank", "account_short", "size", "reduced_size", "reduced_notional_usd", "pnl_share", "leverage",
                               "adl_score", "account"],
                 column_config={**cards.address_columns("account", "Account", link=True),
                                "rank": st.column_config.NumberColumn("ADL rank"),
                                "size": st.column_config.NumberColumn("Size", format="%.4f"),
                                "reduced_size": st.column_config.NumberColumn("Reduced size", format="%.4f"),
                                "reduced_notional_usd": st.column_config.NumberColumn("Reduced (USD)", format="dollar"),
                                "pnl_share": st.column_config.NumberColumn("PnL ÷ collateral", format="percent"),
                                "leverage": st.column_config.NumberColumn("Leverage (×)", format="%.1f"),
                                "adl_score": st.column_config.NumberColumn("ADL score", format="%.2f")})
    common.csv_download(exposure, "adl_exposure")

st.subheader("ADL'd accounts in the period", anchor=False)
history = common.adl_history(view.chain_id, view.filters)
st.dataframe(cards.with_short_addresses(history, "account", link=True), hide_index=True, width="stretch",
             column_order=["account_short", "reductions", "reduced_notional_usd", "realized_pnl_usd", "last_time", "account"],
             column_config={**cards.address_columns("account", "Account", link=True),
                            "reductions": st.column_config.NumberColumn("ADL reductions", format="localized"),
                            "reduced_notional_usd": st.column_config.NumberColumn("Reduced notional (USD)", format="dollar"),
                            "realized_pnl_usd": st.column_config.NumberColumn("Realized PnL (USD)", format="dollar"),
                            "last_time": st.column_config.DatetimeColumn("Last ADL (UTC)")})
common.csv_download(history, "adl_history")
