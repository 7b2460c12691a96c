"""Markets: the per-market table and one market's volume, price and funding history."""

from __future__ import annotations

import polars as pl
import streamlit as st

from core import charts
from pages import _common as common

st.title("Markets")
view = common.view()
if view is None:
    st.stop()

table = common.market_table(view.chain_id, view.filters)
st.dataframe(
    table.drop("market"), hide_index=True, width="stretch",
    column_config={
        "symbol": st.column_config.TextColumn("market"),  # plain text: symbols are untrusted on-chain strings
        "volume_usd": st.column_config.NumberColumn("volume", format="dollar"),
        "share": st.column_config.ProgressColumn("share", format="percent", min_value=0.0, max_value=1.0),
        "open_interest_usd": st.column_config.NumberColumn("open interest", format="dollar"),
        "funding_rate_per_hour": st.column_config.NumberColumn("funding /h", format="%.5f"),
        "liquidated_notional_usd": st.column_config.NumberColumn("liquidated", format="dollar"),
        "fees_usd": st.column_config.NumberColumn("fees", format="dollar"),
        "last_price": st.column_config.NumberColumn("last price", format="%.4f"),
    },
)
common.csv_download(table, "markets")
if table.is_empty():
    st.stop()

labels = dict(zip(table["market"], table["symbol"], strict=True))
market = st.selectbox("Market", table["market"].to_list(), format_func=labels.get, key="markets_market")
series = common.market_series(view.chain_id, market, view.filters, view.granularity)
series = series.with_columns(pl.lit(labels[market]).alias("symbol"))
left, right = st.columns(2)
with left:
    common.chart(charts.bars(series, "volume_usd", "Volume (USD)", color=None, fmt="$,.0f"),
                 series.select("bucket", "volume_usd", "trades"), "market_volume")
with right:
    common.chart(charts.candles(series, "Price (OHLC of trades)"),
                 series.select("bucket", "open_price", "high_price", "low_price", "close_price"), "market_ohlc")
funding = series.filter(pl.col("funding_rate").is_not_null())
if not funding.is_empty():
    common.chart(charts.lines(funding, "funding_rate", "Funding rate (per hour)", "symbol", fmt=".5f"),
                 funding.select("bucket", "funding_rate"), "market_funding")
