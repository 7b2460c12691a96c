"""Traders: daily active traders, new vs returning, and the top traders by volume."""

from __future__ import annotations

import streamlit as st

from core import charts, fmt
from views import _cards as cards
from views import _common as common

view = common.page("Traders")
f = view.filters
cards.period(f.start, f.end)
cards.card_row(cards.pick(common.overview_cards(view.chain_id, f, view.as_of), "Active traders (24h)", "Trades",
                          "Total volume"), "traders")
days, top = common.trader_activity(view.chain_id, f)
mix = days.unpivot(index="bucket", on=["new", "returning"], variable_name="kind", value_name="traders")
axis = charts.time_axis([days], "day")  # trader activity is counted per UTC day
left, right = st.columns(2)
with left:
    common.chart(charts.bars(days, "active", "Daily active traders", color=None, axis=axis), days, "daily_active_traders")
with right:
    common.chart(charts.bars(mix, "traders", "New vs returning traders", color="kind", axis=axis, color_title="Traders"),
                 mix, "new_vs_returning")
st.subheader("Top traders by volume", anchor=False)
st.dataframe(cards.with_short_addresses(top, "trader", link=True), hide_index=True, width="stretch", placeholder=fmt.MISSING,
             column_order=["trader_short", "volume_usd", "trades", "active_days", "trader"],
             column_config={
                 **cards.address_columns("trader", "Trader", link=True),
                 "volume_usd": st.column_config.NumberColumn("Volume (USD)", format="dollar"),
                 "trades": st.column_config.NumberColumn("Trades", format="localized"),
                 "active_days": st.column_config.NumberColumn("Active days", format="localized",
                                                              help="UTC days with a trade in the period"),
             })
common.csv_download(top, "top_traders")
