"""Backstop vault & insurance fund: the buffers as their depositors see them (HLP / GLP / Drift IF pages)."""

from __future__ import annotations

import polars as pl
import streamlit as st

from core import charts, fmt
from views import _cards as cards
from views import _common as common

view = common.page("Backstop vault & insurance fund")
f = view.filters
cards.period(f.start, f.end)
data = common.buffers(view.chain_id, f, view.as_of)
vault, flows, balance = data["vault_daily"], data["fund_flows"], data["fund_balance"]
last = vault.tail(1)
returns = {r["window_days"]: r for r in data["returns"]}


def window_card(days: int) -> cards.Shown:
    r = returns[days]
    measured = "" if r["days"] == days else f" (the vault is {r['days']} days old: measured over those)"
    apr = "–" if r["apr"] is None else fmt.format_pct(float(r["apr"]))
    return cards.Shown(f"{days}d return", fmt.format_pct(None if r["return"] is None else float(r["return"]), 2),
                       f"Share-price change over the {days} days to the newest block{measured}. APR, the simple "
                       f"annualisation of that window (× 365 / {r['days']}): {apr}. A short window's APR is not a forecast.",
                       None if r["apr"] is None else (f"APR {apr}" if r["days"] >= 30 else f"{r['days']} d: no APR"))


price = data["share_price"]
cards.card_row([
    cards.Shown("Share price", "–" if price is None else f"{price:,.4f}",
                "BackstopVault value ÷ share supply (Σ Deposit.shares − Σ Withdraw.shares) at the period's end."),
    *(window_card(d) for d in (7, 30, 90)),
    cards.Shown("Depositors", fmt.format_count(None if last.is_empty() else float(last["depositors"][0])),
                "Owners holding vault shares at the period's end."),
], "buffers")

axis = charts.time_axis([vault, flows, balance], "day")
left, right = st.columns(2)
with left:
    priced = vault.filter(pl.col("share_price").is_not_null()).with_columns(pl.lit("share price").alias("series"))
    common.chart(charts.lines(priced, "share_price", "Backstop vault share price", "series", fmt=",.4f", axis=axis,
                              color_title="Vault"), priced.select("bucket", "share_price", "value_usd", "shares"), "vault_share_price")
    moves = vault.unpivot(index="bucket", on=["deposits_usd", "withdrawals_usd"], variable_name="flow", value_name="usd").with_columns(
        pl.col("flow").replace({"deposits_usd": "deposits", "withdrawals_usd": "withdrawals"}))
    common.chart(charts.bars(moves, "usd", "Deposits and withdrawals per day", color="flow", fmt="usd", axis=axis,
                             color_title="Flow"), moves, "vault_flows")
with right:
    pnl = vault.unpivot(index="bucket", on=["liquidation_pnl_usd", "other_pnl_usd"], variable_name="source", value_name="usd").with_columns(
        pl.col("source").replace({"liquidation_pnl_usd": "liquidations", "other_pnl_usd": "other (fee share)"}))
    common.chart(charts.bars(pnl, "usd", "Vault PnL by source per day", color="source", fmt="usd", axis=axis,
                             color_title="Source"), pnl, "vault_pnl")
    signed = flows.with_columns(pl.when(pl.col("direction") == "outflow").then(-pl.col("amount_usd"))
                                .otherwise(pl.col("amount_usd")).alias("usd"))
    common.chart(charts.bars(signed, "usd", "Insurance fund inflows (+) and outflows (−) per day", color="kind", fmt="usd",
                             axis=axis, color_title="Kind"), flows, "insurance_flows")
fund_line = balance.with_columns(pl.lit("insurance fund").alias("series"))
common.chart(charts.lines(fund_line, "balance_usd", "Insurance fund balance", "series", axis=axis, color_title="Fund"),
             balance, "insurance_balance")
st.caption("Liquidation PnL: VaultPnLUpdated events naming a liquidated position; other PnL: those with the zero key "
           "(the daily fee share). Returns compare share prices, so deposits and withdrawals are not performance.")
