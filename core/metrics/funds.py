"""The two buffers as their depositors see them (HLP / GLP / Drift IF / MegaVault pages): the
BackstopVault's share price, returns, flows, depositors and PnL by source; the InsuranceFund's
inflows and outflows by kind. Pure: the read layer's event frames in (core/read/funds.py), frames out.

Definitions (EVENTS.md): vault value = running Σ of Deposit assets − Withdraw assets ± pnl; share
supply = Σ Deposit.shares − Σ Withdraw.shares; share price = value ÷ supply. A VaultPnLUpdated that
names a position key is liquidation PnL (the vault absorbing that liquidation's loss); one with the
zero key is other PnL (the daily fee share). Returns compare share prices, so deposits and
withdrawals do not count as performance; APR is the simple annualisation of a window's return.
"""

from __future__ import annotations

import polars as pl

from core.utc import DAY, datetime_expr

ZERO_KEY = "0x" + "0" * 64
RETURN_WINDOWS_DAYS = (7, 30, 90)
#: InsuranceFund events by direction and kind (EVENTS.md): what the fund takes in and pays out.
FUND_KINDS = {"LiquidationFeeCollected": ("inflow", "penalties"), "InsuranceFundDeposit": ("inflow", "deposits"),
              "ShortfallCovered": ("outflow", "shortfall cover"), "InsuranceFundWithdraw": ("outflow", "withdrawals")}


def vault_path(events: pl.DataFrame) -> pl.DataFrame:
    """Per vault event: value, share supply and holders after it (chain order kept)."""
    signed_shares = (pl.when(pl.col("event") == "Deposit").then(pl.col("shares"))
                     .when(pl.col("event") == "Withdraw").then(-pl.col("shares")).otherwise(0.0).fill_null(0.0))
    df = events.with_columns(signed_shares.alias("share_change"), pl.col("owner").fill_null(""))
    df = df.with_columns(pl.col("share_change").cum_sum().over("owner").alias("owner_shares"))
    before = pl.col("owner_shares") - pl.col("share_change")
    holder_change = (pl.col("owner_shares") > 1e-9).cast(pl.Int64) - (before > 1e-9).cast(pl.Int64)
    return df.with_columns(
        pl.col("value_change_usd").cum_sum().alias("value_usd"), pl.col("share_change").cum_sum().alias("shares_total"),
        pl.when(pl.col("event").is_in(["Deposit", "Withdraw"])).then(holder_change).otherwise(0).cum_sum().alias("depositors"),
    )


def latest_share_price(path: pl.DataFrame) -> float | None:
    """Value ÷ share supply after the last event of :func:`vault_path`; None while no share is outstanding."""
    if path.is_empty():
        return None
    value, shares = float(path["value_usd"][-1]), float(path["shares_total"][-1])
    return value / shares if shares > 1e-9 else None


def vault_daily(events: pl.DataFrame) -> pl.DataFrame:
    """Per UTC day with vault events: deposits, withdrawals, liquidation and other PnL, and at the day's
    end the value, share supply, share price and depositors (holders of shares)."""
    path = vault_path(events).with_columns((pl.col("block_timestamp") // DAY * DAY).alias("bucket"))
    pnl = pl.col("event") == "VaultPnLUpdated"
    liquidation = pnl & pl.col("position_key").is_not_null() & (pl.col("position_key") != ZERO_KEY)
    daily = path.group_by("bucket", maintain_order=True).agg(
        pl.col("value_change_usd").filter(pl.col("event") == "Deposit").sum().alias("deposits_usd"),
        (-pl.col("value_change_usd").filter(pl.col("event") == "Withdraw")).sum().alias("withdrawals_usd"),
        pl.col("value_change_usd").filter(liquidation).sum().alias("liquidation_pnl_usd"),
        pl.col("value_change_usd").filter(pnl & ~liquidation).sum().alias("other_pnl_usd"),
        pl.col("value_usd").last(), pl.col("shares_total").last().alias("shares"), pl.col("depositors").last(),
    )
    return daily.with_columns(
        pl.when(pl.col("shares") > 1e-9).then(pl.col("value_usd") / pl.col("shares")).otherwise(None).alias("share_price"),
        datetime_expr("bucket").dt.date().alias("date"),
    ).sort("bucket")


def price_at(daily: pl.DataFrame, ts: int) -> float | None:
    """The share price at the end of the last day with events before ``ts``."""
    before = daily.filter((pl.col("bucket") < ts) & pl.col("share_price").is_not_null())
    return float(before["share_price"][-1]) if before.height else None


def vault_returns(daily: pl.DataFrame, as_of: int) -> list[dict[str, float | int | None]]:
    """Share-price return and its simple annualisation over each window ending at ``as_of`` (inclusive).

    A window longer than the history is measured from the first share price and says so in ``days``."""
    end = as_of // DAY * DAY + DAY
    last = price_at(daily, end)
    priced = daily.filter(pl.col("share_price").is_not_null())
    out: list[dict[str, float | int | None]] = []
    for window in RETURN_WINDOWS_DAYS:
        first = price_at(daily, end - window * DAY)  # at the end of the day before the window's first
        days = window
        if first is None and priced.height:  # the vault is younger than the window: since its first price
            first, days = float(priced["share_price"][0]), (end - DAY - int(priced["bucket"][0])) // DAY
        ret = None if first is None or last is None or first <= 0 else last / first - 1
        out.append({"window_days": window, "days": days, "return": ret,
                    "apr": None if ret is None or days <= 0 else ret * 365 / days})
    return out


def insurance_flows(per_day: pl.DataFrame) -> pl.DataFrame:
    """Per UTC day and kind: the InsuranceFund's inflows (penalties, deposits) and outflows (shortfall cover,
    withdrawals) as positive USD with their ``direction``, from (bucket, event, amount_usd) rows; an
    event name this module does not know is kept as its own kind, direction "other"."""
    kinds = pl.DataFrame([(e, d, k) for e, (d, k) in FUND_KINDS.items()], schema=["event", "direction", "kind"], orient="row")
    df = per_day.join(kinds, on="event", how="left").with_columns(
        pl.col("direction").fill_null("other"), pl.col("kind").fill_null(pl.col("event")))
    return df.group_by("bucket", "direction", "kind").agg(pl.col("amount_usd").sum()).sort("bucket", "direction", "kind")


def insurance_balance(balance_rows: pl.DataFrame) -> pl.DataFrame:
    """The InsuranceFund's balance at the end of each UTC day with a fund event (from the protocol rollup's rows)."""
    return balance_rows.filter(pl.col("insurance_fund_usd").is_not_null()).select(
        "bucket", pl.col("insurance_fund_usd").alias("balance_usd")).sort("bucket")
