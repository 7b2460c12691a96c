"""Liquidations & risk: each liquidation's waterfall, the cumulative waterfall, coverage, drill-down by day."""

from __future__ import annotations

import streamlit as st

from core import charts
from core.period import Filters
from core.utc import DAY, format_day
from pages import _common as common

st.title("Liquidations & risk")
view = common.view()
if view is None:
    st.stop()
f = view.filters

series = common.overview_series(view.chain_id, f, "day")
st.caption("Click a day in the chart to list that day's liquidations.")
event = st.altair_chart(charts.liquidations(series["liquidations"], selectable=True), width="stretch",
                        on_select="rerun", key="liquidations_chart")
common.csv_download(series["liquidations"], "liquidations_by_day")
picked = [p.get("bucket") for p in event.selection.get("day", [])] if event and event.selection else []
picked = [int(b) for b in picked if b is not None]

coverage = common.coverage(view.chain_id, f, view.granularity)  # protocol-wide: every market's OI vs the shared buffers
left, right = st.columns(2)
with left:
    common.chart(charts.waterfall(series["waterfall"]), series["waterfall"], "waterfall")
with right:
    common.chart(charts.lines(coverage, "coverage", "Coverage: (insurance fund + backstop) / open interest", "series",
                              fmt=".2%"), coverage, "coverage")

if picked:
    day = picked[0]
    rows = common.liquidation_rows(view.chain_id, Filters(day, day + DAY, f.markets))
    st.subheader(f"Liquidations on {format_day(day)}", anchor=False)
else:
    rows = common.liquidation_rows(view.chain_id, f, 500)
    st.subheader("Latest liquidations (up to 500)", anchor=False)
st.dataframe(rows, hide_index=True, width="stretch", column_config={
    "symbol": st.column_config.TextColumn("market"),
    "notional_usd": st.column_config.NumberColumn("notional", format="dollar"),
    "deficit_usd": st.column_config.NumberColumn("deficit", format="dollar"),
    "adl_covered_usd": st.column_config.NumberColumn("ADL", format="dollar"),
    "backstop_loss_usd": st.column_config.NumberColumn("backstop", format="dollar"),
    "insurance_cover_usd": st.column_config.NumberColumn("insurance", format="dollar"),
    "socialized_usd": st.column_config.NumberColumn("socialized", format="dollar"),
})
common.csv_download(rows, "liquidation_rows")

st.subheader("Top liquidated accounts", anchor=False)
top = common.top_liquidated_accounts(view.chain_id, f)
st.dataframe(top, hide_index=True, width="stretch")
common.csv_download(top, "top_liquidated_accounts")
