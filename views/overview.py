"""Overview: headline stat cards and the protocol's health charts for the selected period."""

from __future__ import annotations

import streamlit as st

from core import charts
from core.metrics import revenue
from views import _cards as cards
from views import _common as common

view = common.page("marginX protocol overview")
f, gran = view.filters, view.granularity
cards.period(f.start, f.end)
cards.card_row(common.overview_cards(view.chain_id, f, view.as_of), "overview")

series = common.overview_series(view.chain_id, f, gran)
if series["volume"].is_empty():
    st.info("No trades in this period.")
axis = charts.time_axis(series.values(), gran)  # one date axis for every chart of the page
with st.container(horizontal=True, vertical_alignment="center", key="overview_toggles"):
    split = st.segmented_control("Volume and trades", ["By market", "Total", "Taker buy / sell"], default="By market",
                                 key="overview_split", label_visibility="collapsed")
    cumulative = st.toggle("Cumulative", value=True, key="overview_cumulative", help="Running total as a dashed line (right axis)")
sides = split == "Taker buy / sell"
shown = revenue.taker_sides(series["volume"]) if sides else series["volume"]
by = "side" if sides else ("symbol" if split != "Total" else None)
style = {"color_title": "Taker side", "sort": charts.TAKER_SIDES} if sides else {}
left, right = st.columns(2)
with left:
    common.chart(charts.stacked_bars(shown, "volume_usd", "Volume (USD)", color=by, cumulative=cumulative, axis=axis, **style),
                 series["volume"], "volume")
    common.chart(charts.liquidations(series["liquidations"], axis=axis), series["liquidations"], "liquidations")
    common.chart(charts.area(series["open_interest"], "oi_usd", "Open interest (USD)", color="symbol", axis=axis),
                 series["open_interest"], "open_interest")
with right:
    common.chart(charts.stacked_bars(shown, "trades", "Trades", color=by, spec="count", cumulative=cumulative, axis=axis, **style),
                 series["volume"].drop("volume_usd", "taker_buy_volume_usd"), "trades")
    common.chart(charts.area(series["bad_debt"], "cumulative_usd", "Bad debt, cumulative socialized (USD)", axis=axis),
                 series["bad_debt"], "bad_debt")
    common.chart(charts.lines(series["balances"], "usd", "Insurance fund and backstop vault (USD)", "series", axis=axis,
                              color_title="Balance"), series["balances"], "balances")
