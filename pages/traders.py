"""Traders: daily active traders, new vs returning, and the top traders by volume."""

from __future__ import annotations

import streamlit as st

from core import charts
from pages import _common as common

st.title("Traders")
view = common.view()
if view is None:
    st.stop()
days, top = common.trader_activity(view.chain_id, view.filters)
mix = days.unpivot(index="bucket", on=["new", "returning"], variable_name="kind", value_name="traders")
left, right = st.columns(2)
with left:
    common.chart(charts.bars(days, "active", "Daily active traders", color=None), days, "daily_active_traders")
with right:
    common.chart(charts.bars(mix, "traders", "New vs returning traders", color="kind"), mix, "new_vs_returning")
st.subheader("Top traders by volume", anchor=False)
st.dataframe(top, hide_index=True, width="stretch",
             column_config={"volume_usd": st.column_config.NumberColumn("volume", format="dollar")})
common.csv_download(top, "top_traders")
