"""Account: paste an address to see its positions, trades, PnL, funding, liquidations and ADL reductions."""

from __future__ import annotations

import polars as pl
import streamlit as st

from core import charts, fmt
from core.read.accounts import ADDRESS, AccountError
from views import _cards as cards
from views import _common as common

view = common.page("Account")
linked = common.link_param("address", ADDRESS, "an address (0x and 40 hex digits)")  # a link's value may be anything
text = st.text_input("Address", value=linked or "", placeholder="0x…", key="account_address",
                     max_chars=200)
if not text.strip():
    st.info("Paste an account's address (0x followed by 40 hex digits), or follow an account link from another page.")
    st.stop()
try:
    acct = common.account(view.chain_id, text)
except AccountError as e:
    st.warning(str(e))
    st.stop()
st.query_params["address"] = acct.address
if not acct.known:
    st.warning(f"Nothing indexed for {fmt.short_address(acct.address)} on this chain: no trades, positions, liquidations or ADL.")
    st.stop()
st.caption(f"{acct.address} · the whole indexed history (the sidebar's period does not apply). All times are UTC.")
s = acct.summary
cards.card_row([
    cards.Shown("Volume", fmt.format_usd(float(s["volume_usd"])), "Σ notional of the Trades it was maker or taker of."),
    cards.Shown("Trades", fmt.format_count(float(s["trades"])), "Trades it was maker or taker of."),
    cards.Shown("Net PnL", fmt.format_usd(float(s["net_pnl_usd"])), "Realized PnL − funding paid − fees (its PositionUpdated events)."),
    cards.Shown("Realized PnL", fmt.format_usd(float(s["realized_pnl_usd"])), "Σ PositionUpdated.realizedPnl."),
    cards.Shown("Funding paid", fmt.format_usd(float(s["funding_paid_usd"])), "Σ PositionUpdated.fundingPaid (negative: received)."),
    cards.Shown("Fees", fmt.format_usd(float(s["fees_usd"])), "Σ PositionUpdated.fee."),
    cards.Shown("Liquidations", fmt.format_count(float(s["liquidations"])), "Its PositionLiquidated events."),
    cards.Shown("ADL reductions", fmt.format_count(float(s["adl_reductions"])), "ADLExecuted events that force-reduced it."),
], "account")

pnl = acct.pnl_daily.with_columns(pl.lit("cumulative net PnL").alias("series"))
if pnl.height:
    common.chart(charts.lines(pnl, "cumulative_net_pnl_usd", "Cumulative net PnL", "series", color_title="Account"),
                 acct.pnl_daily, "account_pnl")
st.subheader("Positions", anchor=False)
st.dataframe(acct.positions.with_columns(pl.when(pl.col("is_long")).then(pl.lit("long")).otherwise(pl.lit("short")).alias("side")),
             hide_index=True, width="stretch",
             column_order=["market", "side", "size", "entry_price", "collateral_usd", "position_key"],
             column_config={"market": st.column_config.TextColumn("Market"), "side": st.column_config.TextColumn("Side"),
                            "size": st.column_config.NumberColumn("Size (0 = closed)", format="%.4f"),
                            "entry_price": st.column_config.NumberColumn("Entry (USD)", format="%.4f"),
                            "collateral_usd": st.column_config.NumberColumn("Collateral (USD)", format="dollar"),
                            "position_key": st.column_config.TextColumn("Position key")})
common.csv_download(acct.positions, "account_positions")
st.subheader("Newest trades (up to 500)", anchor=False)
st.dataframe(acct.trades, hide_index=True, width="stretch", column_config={
    "time": st.column_config.DatetimeColumn("Time (UTC)"), "market": st.column_config.TextColumn("Market"),
    "role": st.column_config.TextColumn("Role"), "side": st.column_config.TextColumn("Side"),
    "price": st.column_config.NumberColumn("Price (USD)", format="%.4f"), "size": st.column_config.NumberColumn("Size", format="%.4f"),
    "notional_usd": st.column_config.NumberColumn("Notional (USD)", format="dollar"),
    "fee_usd": st.column_config.NumberColumn("Fee (USD)", format="dollar", help="negative: a maker rebate"),
    "fill": st.column_config.TextColumn("Fill type"), "tx_hash": st.column_config.TextColumn("Transaction")})
common.csv_download(acct.trades, "account_trades")
left, right = st.columns(2)
with left:
    st.subheader("Liquidations", anchor=False)
    st.dataframe(acct.liquidations, hide_index=True, width="stretch")
    common.csv_download(acct.liquidations, "account_liquidations")
with right:
    st.subheader("ADL reductions", anchor=False)
    st.dataframe(acct.adl, hide_index=True, width="stretch")
    common.csv_download(acct.adl, "account_adl")
