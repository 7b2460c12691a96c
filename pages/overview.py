"""Overview: headline stat cards and the protocol's health charts for the selected period."""

from __future__ import annotations

import streamlit as st

from core import charts
from core.fmt import format_usd
from pages import _common as common

st.title("marginX protocol overview")
view = common.view()
if view is None:
    st.stop()
f, gran = view.filters, view.granularity

cards = common.overview_cards(view.chain_id, f, view.as_of)
for row in (cards[:5], cards[5:]):
    for col, card in zip(st.columns(5), row, strict=False):
        value = format_usd(card.value) if card.money else f"{card.value:,.0f}"
        delta = None if card.delta is None else format_usd(card.delta)
        col.metric(card.label, value, delta, help=card.help, border=True)

series = common.overview_series(view.chain_id, f, gran)
if series["volume"].is_empty():
    st.info("No trades in this period.")
left, right = st.columns(2)
with left:
    common.chart(charts.stacked_bars_with_cumulative(series["volume"], "volume_usd", "Volume (USD)"), series["volume"], "volume")
    common.chart(charts.liquidations(series["liquidations"]), series["liquidations"], "liquidations")
    common.chart(charts.area(series["open_interest"], "oi_usd", "Open interest (USD)", color="symbol"),
                 series["open_interest"], "open_interest")
with right:
    common.chart(charts.bars(series["volume"], "trades", "Trades"), series["volume"].drop("volume_usd"), "trades")
    common.chart(charts.area(series["bad_debt"], "cumulative_usd", "Bad debt, cumulative socialized (USD)"),
                 series["bad_debt"], "bad_debt")
    common.chart(charts.lines(series["balances"], "usd", "Insurance fund and backstop vault (USD)", "series"),
                 series["balances"], "balances")
