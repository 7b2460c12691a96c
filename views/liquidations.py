"""Liquidations & risk: each liquidation's waterfall, the cumulative waterfall, coverage, drill-down by day."""

from __future__ import annotations

import streamlit as st

from core import charts, fmt
from core.period import Filters
from core.utc import DAY, format_day
from views import _cards as cards
from views import _common as common

MONEY = "dollar"

view = common.page("Liquidations & risk")
f = view.filters
cards.period(f.start, f.end)
cards.card_row(cards.pick(common.overview_cards(view.chain_id, f, view.as_of), "Liquidations", "Liquidated notional",
                          "Bad debt outstanding", "Insurance fund", "Backstop vault"), "liquidations")

series = common.overview_series(view.chain_id, f, "day")
coverage = common.coverage(view.chain_id, f, view.granularity)  # protocol-wide: every market's OI vs the shared buffers
axis = charts.time_axis([series["liquidations"], series["waterfall"], coverage], "day")
st.caption("Click a day in the chart to list that day's liquidations.")
event = st.altair_chart(charts.liquidations(series["liquidations"], selectable=True, axis=axis), width="stretch",
                        on_select="rerun", key="liquidations_chart")
common.csv_download(series["liquidations"], "liquidations_by_day")
picked = [p.get("bucket") for p in event.selection.get("day", [])] if event and event.selection else []
picked = [int(b) for b in picked if b is not None]

left, right = st.columns(2)
with left:
    common.chart(charts.waterfall(series["waterfall"], axis=axis), series["waterfall"], "waterfall")
with right:
    common.chart(charts.lines(coverage, "coverage", "Coverage: buffers / open interest", "series", fmt=".1%", axis=axis,
                              color_title="Ratio", granularity=view.granularity), coverage, "coverage")
    st.caption("Buffers = insurance fund + backstop vault; open interest of every market.")

if picked:
    day = picked[0]
    rows = common.liquidation_rows(view.chain_id, Filters(day, day + DAY, f.markets))
    st.subheader(f"Liquidations on {format_day(day)}", anchor=False)
else:
    rows = common.liquidation_rows(view.chain_id, f, 500)
    st.subheader("Latest liquidations (up to 500)", anchor=False)
shown = cards.with_short_addresses(rows, "account", link=True)
shown = cards.with_short_addresses(shown, "tx_hash")
st.dataframe(shown, hide_index=True, width="stretch", placeholder=fmt.MISSING, column_order=[
    "time", "account_short", "symbol", "side", "size", "liquidation_price", "mark_price", "notional_usd", "deficit_usd",
    "remaining_equity_usd", "book_filled_size", "adl_size", "adl_covered_usd", "backstop_loss_usd", "insurance_cover_usd",
    "socialized_usd", "fee_collected_usd", "tx_hash_short", "account", "tx_hash"], column_config={
    "time": st.column_config.DatetimeColumn("Time", format="YYYY-MM-DD HH:mm:ss"),
    **cards.address_columns("account", "Account", link=True),
    **cards.address_columns("tx_hash", "Transaction"),
    "symbol": st.column_config.TextColumn("Market"),  # plain text: symbols are untrusted on-chain strings
    "side": st.column_config.TextColumn("Side"),
    "size": st.column_config.NumberColumn("Size (base units)", format="localized"),
    "liquidation_price": st.column_config.NumberColumn("Liquidation price (USD)", format="localized"),
    "mark_price": st.column_config.NumberColumn("Mark price (USD)", format="localized"),
    "notional_usd": st.column_config.NumberColumn("Notional (USD)", format=MONEY),
    "deficit_usd": st.column_config.NumberColumn("Deficit (USD)", format=MONEY, help="Negative remaining equity: the loss to cover"),
    "remaining_equity_usd": st.column_config.NumberColumn("Remaining equity (USD)", format=MONEY),
    "book_filled_size": st.column_config.NumberColumn("Filled on the book (base units)", format="localized"),
    "adl_size": st.column_config.NumberColumn("ADL size (base units)", format="localized"),
    "adl_covered_usd": st.column_config.NumberColumn("ADL (USD)", format=MONEY),
    "backstop_loss_usd": st.column_config.NumberColumn("Backstop vault (USD)", format=MONEY),
    "insurance_cover_usd": st.column_config.NumberColumn("Insurance fund (USD)", format=MONEY),
    "socialized_usd": st.column_config.NumberColumn("Socialized (USD)", format=MONEY),
    "fee_collected_usd": st.column_config.NumberColumn("Liquidation fee (USD)", format=MONEY),
})
common.csv_download(rows, "liquidation_rows")

st.subheader("Top liquidated accounts", anchor=False)
top = common.top_liquidated_accounts(view.chain_id, f)
st.dataframe(cards.with_short_addresses(top, "account", link=True), hide_index=True, width="stretch", placeholder=fmt.MISSING,
             column_order=["account_short", "liquidations", "notional_usd", "deficit_usd", "socialized_usd", "account"],
             column_config={
                 **cards.address_columns("account", "Account", link=True),
                 "liquidations": st.column_config.NumberColumn("Liquidations", format="localized"),
                 "notional_usd": st.column_config.NumberColumn("Liquidated notional (USD)", format=MONEY),
                 "deficit_usd": st.column_config.NumberColumn("Deficit (USD)", format=MONEY),
                 "socialized_usd": st.column_config.NumberColumn("Socialized (USD)", format=MONEY),
             })
common.csv_download(top, "top_liquidated_accounts")
