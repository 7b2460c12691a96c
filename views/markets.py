"""Markets: the per-market table and one market's volume, price and funding history."""

from __future__ import annotations

import polars as pl
import streamlit as st

from core import charts, fmt
from core.metrics import revenue
from views import _cards as cards
from views import _common as common

view = common.page("Markets")
f = view.filters
cards.period(f.start, f.end)
cards.card_row(cards.pick(common.overview_cards(view.chain_id, f, view.as_of), "Total volume", "24h volume", "Trades",
                          "Open interest"), "markets")

table = common.market_table(view.chain_id, f)
st.dataframe(
    table.drop("market").with_columns(fmt.annualised_expr("funding_rate_per_hour", "funding_apr")),
    hide_index=True, width="stretch", placeholder=fmt.MISSING,
    column_order=["symbol", "market_type", "volume_usd", "share", "trades", "open_interest_usd", "funding_apr",
                  "liquidations", "liquidated_notional_usd", "fees_usd", "last_price"],
    column_config={
        "symbol": st.column_config.TextColumn("Market"),  # plain text: symbols are untrusted on-chain strings
        "market_type": st.column_config.TextColumn("Type"),
        "volume_usd": st.column_config.NumberColumn("Volume (USD)", format="dollar"),
        "share": st.column_config.ProgressColumn("Share of volume", format="percent", min_value=0.0, max_value=1.0),
        "trades": st.column_config.NumberColumn("Trades", format="localized"),
        "open_interest_usd": st.column_config.NumberColumn(
            "Open interest (USD)", format="dollar", help="Perps only: latest long open interest × latest mark price"),
        "funding_apr": st.column_config.NumberColumn(
            "Funding, annualised", format="percent",
            help="Latest funding rate per hour × 24 × 365 (perps only); the chart below shows it per hour too"),
        "liquidations": st.column_config.NumberColumn("Liquidations", format="localized"),
        "liquidated_notional_usd": st.column_config.NumberColumn("Liquidated notional (USD)", format="dollar"),
        "fees_usd": st.column_config.NumberColumn("Fees (USD)", format="dollar"),
        "last_price": st.column_config.NumberColumn("Last price (USD)", format="localized"),
    },
)
common.csv_download(table, "markets")
if table.is_empty():
    st.stop()

labels = dict(zip(table["market"], table["symbol"], strict=True))
market = st.selectbox("Market", table["market"].to_list(), format_func=labels.get, key="markets_market")
series = common.market_series(view.chain_id, market, f, view.granularity)
series = series.with_columns(pl.lit(labels[market]).alias("symbol"))
axis = charts.time_axis([series], view.granularity)  # the market's charts share one date axis
with st.container(horizontal=True, vertical_alignment="center", key="markets_toggles"):
    split = st.segmented_control("Volume", ["Total", "Taker buy / sell"], default="Total", key="markets_split",
                                 label_visibility="collapsed")
    cumulative = st.toggle("Cumulative", value=False, key="markets_cumulative", help="Running total as a dashed line (right axis)")
if split == "Taker buy / sell":
    volume = charts.stacked_bars(revenue.taker_sides(series), "volume_usd", "Volume (USD)", color="side",
                                 color_title="Taker side", sort=charts.TAKER_SIDES, cumulative=cumulative, axis=axis)
else:
    volume = charts.stacked_bars(series, "volume_usd", "Volume (USD)", color=None, cumulative=cumulative, axis=axis)
left, right = st.columns(2)
with left:
    common.chart(volume, series.select("bucket", "volume_usd", "taker_buy_volume_usd", "trades"), "market_volume")
with right:
    common.chart(charts.candles(series, "Price (OHLC of trades, USD)", axis=axis),
                 series.select("bucket", "open_price", "high_price", "low_price", "close_price"), "market_ohlc")
if series["funding_rate"].drop_nulls().len():
    common.chart(charts.funding(series, axis=axis), series.select("bucket", "funding_rate"), "market_funding")
