"""What each ``/stats`` endpoint answers, as JSON-ready dicts: the dashboard's compositions (the same
functions the pages call) turned into the API's shapes. No figure is computed here; this module
only names columns and lays rows out (``{"interval", "points": [{"time", "date", …, "value"}]}``).
NaN and ±inf are left in: the app writes them as JSON null (core/api/app.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import polars as pl
from sqlalchemy.engine import Engine

from core import dashboard, metrics
from core.api.params import INTERVALS, View
from core.period import Filters
from core.read import stats as read
from core.utc import DAY, day_start, format_day

INTERVAL_NAMES = {g: name for name, g in INTERVALS.items()}


def points(rows: pl.DataFrame | Sequence[dict[str, Any]], columns: Sequence[str], value: str) -> list[dict[str, Any]]:
    """One point per bucket: ``time`` (its start, unix seconds), ``date`` (its UTC day), the named
    columns and ``value`` (= the column ``value``), in ascending time. ``rows``: a frame, or dicts
    in ascending bucket order (dashboard.period_totals)."""
    if isinstance(rows, pl.DataFrame):
        rows = list(rows.sort("bucket").iter_rows(named=True))
    out = []
    for row in rows:
        day = row.get("date")  # period_totals' rows carry it formatted
        point = {"time": row["bucket"], "date": day if isinstance(day, str) else format_day(row["bucket"]),
                 **{c: row[c] for c in columns}}
        point["value"] = point[value]
        out.append(point)
    return out


def series(view: View, rows: pl.DataFrame | Sequence[dict[str, Any]], columns: Sequence[str], value: str,
           **extra: Any) -> dict[str, Any]:
    return {"interval": INTERVAL_NAMES[view.granularity], "as_of_block": view.as_of_block, "as_of_time": view.as_of_time,
            "points": points(rows, columns, value), **extra}


def overview(engine: Engine, view: View) -> dict[str, Any]:
    """``python -m core.report``'s object for the period, plus the newest indexed block and its time."""
    return {**dashboard.report(engine, view.chain_id, view.filters), "as_of_block": view.as_of_block,
            "as_of_time": view.as_of_time}


def volume(engine: Engine, view: View) -> dict[str, Any]:
    rows = [{**r, "cumulative_usd": r["cumulative_volume_usd"]}
            for r in dashboard.period_totals(engine, view.chain_id, view.filters, view.granularity)]
    return series(view, rows, ("volume_usd", "trades", "cumulative_usd"), "volume_usd")


def trades(engine: Engine, view: View) -> dict[str, Any]:
    return series(view, dashboard.period_totals(engine, view.chain_id, view.filters, view.granularity), ("trades",), "trades")


def liquidations(engine: Engine, view: View) -> dict[str, Any]:
    return series(view, dashboard.period_totals(engine, view.chain_id, view.filters, view.granularity),
                  ("liquidations", "liquidated_notional_usd"), "liquidations")


def bad_debt(engine: Engine, view: View) -> dict[str, Any]:
    rows = [{**r, "cumulative_usd": r["outstanding_debt_usd"]}
            for r in dashboard.period_totals(engine, view.chain_id, view.filters, view.granularity)]
    return series(view, rows, ("socialized_debt_usd", "cumulative_usd"), "socialized_debt_usd")


def open_interest(engine: Engine, view: View) -> dict[str, Any]:
    df = dashboard.open_interest_totals(engine, view.chain_id, view.filters, view.granularity)
    return series(view, df, ("open_interest_usd",), "open_interest_usd")


def insurance(engine: Engine, view: View) -> dict[str, Any]:
    """Insurance fund and backstop vault balances at each bucket's end (protocol-wide: the buffers are shared)."""
    f = view.filters
    protocol_all = dashboard.protocol_stats(engine, view.chain_id, Filters(end=f.end), view.granularity)
    long = metrics.balance_series(protocol_all, Filters(f.start, f.end))
    wide = long.pivot(on="series", index="bucket", values="usd").rename(
        {"Insurance fund": "insurance_fund_usd", "Backstop vault": "backstop_vault_usd"})
    if wide.is_empty():
        wide = pl.DataFrame(schema={"bucket": pl.Int64(), "insurance_fund_usd": pl.Float64(), "backstop_vault_usd": pl.Float64()})
    return series(view, wide, ("insurance_fund_usd", "backstop_vault_usd"), "insurance_fund_usd")


def traders(engine: Engine, view: View, top: int = 25) -> dict[str, Any]:
    """Daily active, new and returning traders, the period's distinct traders and the top traders by volume."""
    days, top_traders = dashboard.trader_activity(engine, view.chain_id, view.filters, top)
    return series(view, days, ("active", "new", "returning"), "active",
                  active_traders=read.active_traders(engine, view.chain_id, view.filters),
                  top=top_traders.to_dicts())


def markets(engine: Engine, view: View) -> dict[str, Any]:
    """The per-market table of the period (symbols are untrusted text: data, never markup)."""
    table = dashboard.market_table(engine, view.chain_id, view.filters)
    return {"as_of_block": view.as_of_block, "as_of_time": view.as_of_time, "markets": table.to_dicts()}


def liquidation_day(engine: Engine, view: View, day: dt.date) -> dict[str, Any]:
    """One UTC day's liquidations, newest first, each with its waterfall (``time`` in unix seconds)."""
    start = day_start(day)
    rows = dashboard.liquidation_rows(engine, view.chain_id, Filters(start, start + DAY, view.filters.markets))
    rows = rows.with_columns(pl.col("time").dt.epoch("s"))
    return {"date": day.isoformat(), "as_of_block": view.as_of_block, "as_of_time": view.as_of_time,
            "liquidations": rows.to_dicts()}


def _table(view: View, **tables: pl.DataFrame | Any) -> dict[str, Any]:
    """Tables (frames as lists of rows, datetimes as unix seconds) and plain values, with the newest block."""
    def rows(df: pl.DataFrame) -> list[dict[str, Any]]:
        return df.with_columns(pl.col(pl.Datetime).dt.epoch("s")).to_dicts()

    return {"as_of_block": view.as_of_block, "as_of_time": view.as_of_time,
            **{k: rows(v) if isinstance(v, pl.DataFrame) else v for k, v in tables.items()}}


def fees(engine: Engine, view: View) -> dict[str, Any]:
    """Fees by kind per bucket (taker, maker with rebates negative, liquidation), the protocol's net and
    its running total; value = net_fees_usd; ``by_market`` the period's per-market split."""
    data = dashboard.revenue_and_pnl(engine, view.chain_id, view.filters, view.granularity)
    return series(view, data["fees"], ("taker_fees_usd", "maker_fees_usd", "liquidation_fees_usd", "net_fees_usd",
                                       "cumulative_net_fees_usd"), "net_fees_usd",
                  by_market=data["fees_by_market"].to_dicts())


def fill_types(engine: Engine, view: View) -> dict[str, Any]:
    """Volume per bucket by fill type (normal, liquidation, adl, backstop); value = the forced part."""
    df = dashboard.revenue_and_pnl(engine, view.chain_id, view.filters, view.granularity)["fill_volume"]
    wide = df.group_by("bucket", "fill_type").agg(pl.col("volume_usd").sum()).pivot(on="fill_type", index="bucket", values="volume_usd")
    for kind in ("normal", "liquidation", "adl", "backstop"):
        if kind not in wide.columns:
            wide = wide.with_columns(pl.lit(0.0).alias(kind))
    wide = wide.with_columns((pl.col("liquidation") + pl.col("adl") + pl.col("backstop")).alias("forced"))
    return series(view, wide, ("normal", "liquidation", "adl", "backstop", "forced"), "forced")


def traders_pnl(engine: Engine, view: View) -> dict[str, Any]:
    """Traders' realized PnL, funding paid, fees, net PnL and its running total per UTC day, with the
    profitable and losing traders of the day (all markets); value = net_pnl_usd."""
    df = dashboard.revenue_and_pnl(engine, view.chain_id, view.filters, "day")["traders_pnl"]
    return series(view, df, ("realized_pnl_usd", "funding_paid_usd", "position_fees_usd", "net_pnl_usd", "cumulative_net_pnl_usd",
                             "profitable_traders", "losing_traders"), "net_pnl_usd")


def funding(engine: Engine, view: View) -> dict[str, Any]:
    """Per perp market over the period: the latest and mean funding rate annualised, cumulative funding."""
    return _table(view, markets=dashboard.funding(engine, view.chain_id, view.filters)["summary"])


def buffers(engine: Engine, view: View) -> dict[str, Any]:
    """The BackstopVault per day (flows, PnL by source, value, shares, share price, depositors), its
    share-price returns over 7/30/90 days and the InsuranceFund's flows by kind per day."""
    data = dashboard.buffers(engine, view.chain_id, view.filters, view.as_of_time)
    return _table(view, share_price=data["share_price"], returns=data["returns"], vault_daily=data["vault_daily"].drop("date"),
                  fund_flows=data["fund_flows"], fund_balance=data["fund_balance"])


def positions(engine: Engine, view: View) -> dict[str, Any]:
    """The open book at the newest block: largest and most-levered positions, leverage buckets, OI by side
    and the liquidation map of the selected markets."""
    book = dashboard.position_risk(engine, view.chain_id, view.filters.markets)
    return _table(view, **book)


def adl(engine: Engine, view: View) -> dict[str, Any]:
    """The accounts ADL force-reduced in the period, most reduced first."""
    return _table(view, accounts=dashboard.adl_history(engine, view.chain_id, view.filters))


def account(engine: Engine, view: View, address: str) -> dict[str, Any]:
    """One account's totals, daily PnL, positions, newest trades, liquidations and ADL reductions."""
    a = dashboard.account(engine, view.chain_id, address)
    return _table(view, address=a.address, known=a.known, summary=a.summary, pnl_daily=a.pnl_daily, positions=a.positions,
                  trades=a.trades, liquidations=a.liquidations, adl=a.adl)
